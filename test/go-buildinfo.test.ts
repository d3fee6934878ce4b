import type Docker from 'dockerode';
import tar from 'tar-stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { errorOf } from './support/errors.js';
import { TARGET_IDS, TARGETS, type ImageTargetId } from '../src/contract/targets.js';
import { readElfHeader } from '../src/verify/elf-header.js';
import { readElfFile } from '../src/verify/elf-sections.js';
import { parseGoVersionM, readGoBuildInfo, type GoBuildInfo, type GoModule } from '../src/verify/go-buildinfo.js';
import { requireDocker, requireImages } from './support/env.js';

// Host programs are built in the builder images; each comes back with what Go's own tools
// say about it: `go version -m` text, and debug/buildinfo.Read as JSON (the oracle). What
// needs no built program (bytes that are not ELF, the unquoting of `go version -m`
// text) is test/go-buildinfo-text.test.ts.

/** One host program: its source files and the `go build` command (without -o and package). */
interface Variant {
  name: string;
  files: Record<string, string>;
  build: string;
}

interface Built {
  binary: Buffer;
  versionM: string;
  goJson: GoJsonBuildInfo;
  /** `go env -json` in the image that built it. */
  goEnv: Record<string, string>;
}

/** debug.BuildInfo as encoding/json writes it. */
interface GoJsonModule {
  Path: string;
  Version: string;
  Sum: string;
  Replace: GoJsonModule | null;
}
interface GoJsonBuildInfo {
  GoVersion: string;
  Path: string;
  Main: GoJsonModule;
  Deps: GoJsonModule[] | null;
  Settings: { Key: string; Value: string }[] | null;
}

const GO_MOD = 'module example.com/host\n\ngo 1.22\n';
const MAIN_STDLIB = 'package main\n\nimport (\n\t"fmt"\n\t"os"\n)\n\nfunc main() { fmt.Fprintln(os.Stdout, "host", len(os.Args)) }\n';
const STDLIB_HOST = { 'go.mod': GO_MOD, 'main.go': MAIN_STDLIB };

// A module dependency read from vendor/ (no proxy needed), and one replaced by a local directory.
const VENDORED_HOST = {
  'go.mod': `${GO_MOD}\nrequire (\n\texample.com/dep v1.2.3\n\texample.com/local v0.0.0\n)\n\nreplace example.com/local => ./local\n`,
  'vendor/modules.txt':
    '# example.com/dep v1.2.3\n## explicit; go 1.22\nexample.com/dep\n' +
    '# example.com/local v0.0.0 => ./local\n## explicit; go 1.22\nexample.com/local\n' +
    '# example.com/local => ./local\n',
  'vendor/example.com/dep/dep.go': 'package dep\n\nfunc Hello() string { return "hello" }\n',
  'vendor/example.com/local/local.go': 'package local\n\nfunc Name() string { return "local" }\n',
  'main.go':
    'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/dep"\n\t"example.com/local"\n)\n\nvar greeting = "hi"\n\n' +
    'func main() { fmt.Println(dep.Hello(), local.Name(), greeting) }\n',
};

// Reads a binary with Go's own debug/buildinfo; built for the machine, whatever the image targets.
const DUMPER = {
  'go.mod': 'module dump\n\ngo 1.22\n',
  'main.go':
    'package main\n\nimport (\n\t"debug/buildinfo"\n\t"encoding/json"\n\t"os"\n)\n\n' +
    'func main() {\n\tbi, err := buildinfo.ReadFile(os.Args[1])\n\tif err != nil {\n\t\tpanic(err)\n\t}\n\tjson.NewEncoder(os.Stdout).Encode(bi)\n}\n',
};

const AMD64_VARIANTS: Variant[] = [
  { name: 'plain', files: STDLIB_HOST, build: 'go build' },
  { name: 'trimpath', files: STDLIB_HOST, build: 'go build -trimpath -tags netgo,osusergo' },
  // -ldflags with a space is written quoted (strconv.Quote) into the build info.
  { name: 'vendored', files: VENDORED_HOST, build: `go build -mod=vendor -ldflags "-X 'main.greeting=hello world'"` },
  // Big-endian, 64- and 32-bit: pure Go cross builds the amd64 image can make.
  { name: 's390x', files: STDLIB_HOST, build: 'env GOARCH=s390x CGO_ENABLED=0 go build' },
  { name: 'mips', files: STDLIB_HOST, build: 'env GOARCH=mips GOMIPS=softfloat CGO_ENABLED=0 go build' },
];

/**
 * The build setting naming the target's architecture level. Its value is the image's
 * `go env` (Debian's Go defaults GO386 to softfloat where the official one says sse2).
 */
const ARCH_LEVEL: Record<ImageTargetId, string | undefined> = {
  'linux-amd64': 'GOAMD64',
  'linux-arm-7': 'GOARM',
  'linux-arm64': undefined,
  'linux-386': 'GO386',
};

const sq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Shell lines that write `files` under `dir` with printf (the source never passes through an interpreter of its own). */
function writeFiles(dir: string, files: Record<string, string>): string[] {
  return Object.entries(files).flatMap(([name, content]) => {
    const file = `${dir}/${name}`;
    return [`mkdir -p ${sq(file.slice(0, file.lastIndexOf('/')))}`, `printf '%s' ${sq(content)} > ${sq(file)}`];
  });
}

/** Builds the variants in one container of `image` and returns each binary with Go's view of it. */
async function buildVariants(docker: Docker, image: string, variants: Variant[], extra: string[] = []): Promise<Map<string, Buffer>> {
  const script = [
    'set -e',
    'export GOCACHE=/tmp/cache',
    ...writeFiles('/tmp/dump', DUMPER),
    'cd /tmp/dump && env -u GOARM GOARCH=amd64 CGO_ENABLED=0 go build -o /tmp/dump/dump .',
    'mkdir -p /tmp/out && go env -json > /tmp/out/goenv.json',
    ...variants.flatMap((v) => [
      ...writeFiles(`/tmp/src/${v.name}`, v.files),
      `mkdir -p /tmp/out/${v.name}`,
      `cd /tmp/src/${v.name} && ${v.build} -o /tmp/out/${v.name}/host .`,
      `go version -m /tmp/out/${v.name}/host > /tmp/out/${v.name}/version-m.txt`,
      `/tmp/dump/dump /tmp/out/${v.name}/host > /tmp/out/${v.name}/buildinfo.json`,
    ]),
    ...extra,
  ].join('\n');
  const container = await docker.createContainer({
    Image: image,
    Cmd: ['sh', '-c', script],
    NetworkDisabled: true,
    Labels: { 'org.plugforge.test': 'go-buildinfo' },
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await container.start();
    const res = (await container.wait()) as { StatusCode: number };
    if (res.StatusCode !== 0) {
      const logs = await container.logs({ stdout: true, stderr: true });
      throw new Error(`building host programs in ${image} exited ${res.StatusCode}: ${logs.toString()}`);
    }
    const archive = (await container.getArchive({ path: '/tmp/out' })) as unknown as NodeJS.ReadableStream;
    return await new Promise<Map<string, Buffer>>((resolve, reject) => {
      const files = new Map<string, Buffer>();
      const extract = tar.extract();
      extract.on('entry', (header, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c) => chunks.push(c as Buffer));
        stream.on('end', () => {
          if (header.type === 'file') files.set(header.name.replace(/^out\//, ''), Buffer.concat(chunks));
          next();
        });
      });
      extract.on('finish', () => resolve(files));
      extract.on('error', reject);
      archive.pipe(extract);
    });
  } finally {
    await container.remove({ force: true });
  }
}

function built(files: Map<string, Buffer>, name: string): Built {
  const file = (p: string) => {
    const b = files.get(p);
    if (!b) throw new Error(`the container did not produce ${p}`);
    return b;
  };
  return {
    binary: file(`${name}/host`),
    versionM: file(`${name}/version-m.txt`).toString('utf8'),
    goJson: JSON.parse(file(`${name}/buildinfo.json`).toString('utf8')) as GoJsonBuildInfo,
    goEnv: JSON.parse(file('goenv.json').toString('utf8')) as Record<string, string>,
  };
}

/** What debug/buildinfo read, in GoBuildInfo's shape. */
function fromGo(j: GoJsonBuildInfo): GoBuildInfo {
  const mod = (m: GoJsonModule): GoModule => ({
    path: m.Path,
    version: m.Version,
    ...(m.Sum ? { sum: m.Sum } : {}),
    ...(m.Replace ? { replace: mod(m.Replace) } : {}),
  });
  const settings = Object.fromEntries((j.Settings ?? []).map((s) => [s.Key, s.Value]));
  return {
    goVersion: j.GoVersion.replace(/^go/, ''),
    ...(j.Path ? { path: j.Path } : {}),
    ...(j.Main.Path ? { main: mod(j.Main) } : {}),
    deps: (j.Deps ?? []).map(mod),
    settings,
    trimpath: settings['-trimpath'] === 'true',
    tags: (settings['-tags'] ?? '').split(',').filter((t) => t !== ''),
  };
}

function uvarintString(b: Buffer, offset: number): [Buffer, number] {
  let n = 0;
  let shift = 1;
  let at = offset;
  for (;;) {
    const c = b[at++] ?? 0;
    n += (c & 0x7f) * shift;
    if (c < 0x80) break;
    shift *= 128;
  }
  return [Buffer.from(b.subarray(at, at + n)), at + n];
}

/**
 * Rewrites a Go 1.18+ binary's build info blob into the layout of Go 1.13–1.17: two
 * pointers to string headers {data, len}, all behind the section's virtual address.
 */
function toPointerForm(binary: Buffer): Buffer {
  const out = Buffer.from(binary);
  const elf = readElfFile(out);
  const section = elf.sections.find((s) => s.name === '.go.buildinfo');
  if (!section) throw new Error('no .go.buildinfo section to rewrite');
  const o = section.offset;
  const a = section.addr;
  const ptr = elf.is64 ? 8 : 4;
  const [version, next] = uvarintString(out, o + 32);
  const [modinfo] = uvarintString(out, next);
  const write = (at: number, v: number) => {
    if (ptr === 8 && elf.littleEndian) out.writeBigUInt64LE(BigInt(v), at);
    else if (ptr === 8) out.writeBigUInt64BE(BigInt(v), at);
    else if (elf.littleEndian) out.writeUInt32LE(v, at);
    else out.writeUInt32BE(v, at);
  };
  out[o + 15] = elf.littleEndian ? 0 : 1;
  write(o + 16, a + 32);
  write(o + 16 + ptr, a + 32 + 2 * ptr);
  const data = a + 32 + 4 * ptr;
  write(o + 32, data);
  write(o + 32 + ptr, version.length);
  write(o + 32 + 2 * ptr, data + version.length);
  write(o + 32 + 3 * ptr, modinfo.length);
  version.copy(out, o + 32 + 4 * ptr);
  modinfo.copy(out, o + 32 + 4 * ptr + version.length);
  return out;
}

/** The binary with its section header table removed from the ELF header, as `sstrip` leaves it. */
function withoutSectionHeaders(binary: Buffer): Buffer {
  const out = Buffer.from(binary);
  const is64 = out[4] === 2;
  const le = out[5] === 1;
  const w16 = (at: number, v: number) => (le ? out.writeUInt16LE(v, at) : out.writeUInt16BE(v, at));
  if (is64) out.fill(0, 40, 48);
  else out.fill(0, 32, 36);
  const at = is64 ? 52 : 40;
  w16(at + 8, 0); // e_shnum
  w16(at + 10, 0); // e_shstrndx
  return out;
}

let docker: Docker;
let go = '';
const hosts = {} as Record<ImageTargetId, Built>;
let amd64: Map<string, Buffer>;

beforeAll(async () => {
  docker = await requireDocker();
  go = await requireImages(docker, '1.22');
  amd64 = await buildVariants(docker, `plugforge/build:${go}-linux-amd64`, AMD64_VARIANTS, ['cp /bin/true /tmp/out/true']);
  hosts['linux-amd64'] = built(amd64, 'plain');
  for (const t of TARGET_IDS.filter((id) => id !== 'linux-amd64')) {
    hosts[t] = built(await buildVariants(docker, `plugforge/build:${go}-${t}`, [AMD64_VARIANTS[0] as Variant]), 'plain');
  }
}, 900_000);

describe('readGoBuildInfo on host programs built by the builder images', () => {
  it.each(TARGET_IDS)("%s: a plain stdlib build reads as Go reads it, with the image's Go and target", (t) => {
    const { binary, goJson, goEnv } = hosts[t];
    expect(readElfHeader(binary)).toMatchObject({ elfClass: TARGETS[t].elfClass, machine: TARGETS[t].elfMachine });
    const info = readGoBuildInfo(binary);
    expect(info).toStrictEqual(fromGo(goJson));
    expect(info.goVersion).toBe(go);
    expect(info.path).toBe('example.com/host');
    expect(info.main).toStrictEqual({ path: 'example.com/host', version: '(devel)' });
    expect(info.deps).toEqual([]);
    expect(info.trimpath).toBe(false);
    expect(info.tags).toEqual([]);
    expect(info.settings).toMatchObject({
      '-buildmode': 'exe',
      '-compiler': 'gc',
      CGO_ENABLED: '1',
      GOOS: 'linux',
      GOARCH: TARGETS[t].goarch,
    });
    const level = ARCH_LEVEL[t];
    if (level) {
      expect(goEnv[level]).toBeTruthy();
      expect([level, info.settings[level]]).toEqual([level, goEnv[level]]);
    }
    if (t === 'linux-arm-7') expect(info.settings.GOARM).toBe('7');
    expect(info.settings).not.toHaveProperty('-trimpath');
  });

  it.each(TARGET_IDS)('%s: parseGoVersionM of `go version -m` gives the same as the bytes', (t) => {
    const { binary, versionM } = hosts[t];
    expect(versionM).toMatch(new RegExp(`^/tmp/out/plain/host: go${go.replaceAll('.', '\\.')}\\n\\tpath\\texample\\.com/host\\n`));
    expect(parseGoVersionM(versionM)).toStrictEqual(readGoBuildInfo(binary));
  });

  it('-trimpath -tags netgo,osusergo: trimpath true and both tags', () => {
    const b = built(amd64, 'trimpath');
    const info = readGoBuildInfo(b.binary);
    expect(info).toStrictEqual(fromGo(b.goJson));
    expect(info.trimpath).toBe(true);
    expect(info.tags).toEqual(['netgo', 'osusergo']);
    expect(info.settings).toMatchObject({ '-trimpath': 'true', '-tags': 'netgo,osusergo', GOARCH: 'amd64' });
    expect(parseGoVersionM(b.versionM)).toStrictEqual(info);
  });

  it('a vendored module dependency, a replaced one, and a quoted -ldflags', () => {
    const b = built(amd64, 'vendored');
    const info = readGoBuildInfo(b.binary);
    expect(info).toStrictEqual(fromGo(b.goJson));
    expect(info.deps).toStrictEqual([
      { path: 'example.com/dep', version: 'v1.2.3' },
      { path: 'example.com/local', version: 'v0.0.0', replace: { path: './local', version: '(devel)' } },
    ]);
    // Written quoted, read unquoted.
    expect(b.versionM).toContain(`\tbuild\t-ldflags="-X 'main.greeting=hello world'"\n`);
    expect(info.settings['-ldflags']).toBe("-X 'main.greeting=hello world'");
    expect(info.trimpath).toBe(false);
    expect(parseGoVersionM(b.versionM)).toStrictEqual(info);
  });

  it.each([
    ['s390x', 2],
    ['mips', 1],
  ] as const)('big-endian %s (ELF class %i) reads too', (name, elfClass) => {
    const b = built(amd64, name);
    expect(readElfHeader(b.binary)).toMatchObject({ elfClass, dataEncoding: 2 });
    const info = readGoBuildInfo(b.binary);
    expect(info).toStrictEqual(fromGo(b.goJson));
    expect(info.settings).toMatchObject({ GOARCH: name, CGO_ENABLED: '0' });
    expect(parseGoVersionM(b.versionM)).toStrictEqual(info);
  });

  it('reads the pre-1.18 layout, where the blob holds pointers to the strings', () => {
    for (const b of [hosts['linux-amd64'], hosts['linux-arm-7'], built(amd64, 's390x'), built(amd64, 'mips')]) {
      const rewritten = toPointerForm(b.binary);
      expect(rewritten.equals(b.binary)).toBe(false);
      expect(readGoBuildInfo(rewritten)).toStrictEqual(fromGo(b.goJson));
    }
  });

  it('without section headers, finds the blob in the first writable segment', () => {
    for (const b of [hosts['linux-amd64'], hosts['linux-arm-7'], built(amd64, 's390x')]) {
      const stripped = withoutSectionHeaders(b.binary);
      expect(readElfFile(stripped).sections).toEqual([]);
      expect(readGoBuildInfo(stripped)).toStrictEqual(fromGo(b.goJson));
    }
  });

  it('reads extended section numbering (section count and name table index kept in section 0)', () => {
    for (const b of [hosts['linux-amd64'], hosts['linux-arm-7']]) {
      const out = Buffer.from(b.binary);
      const is64 = out[4] === 2;
      const at = is64 ? 60 : 48; // e_shnum; e_shstrndx follows
      const shoff = is64 ? Number(out.readBigUInt64LE(40)) : out.readUInt32LE(32);
      const shnum = out.readUInt16LE(at);
      const shstrndx = out.readUInt16LE(at + 2);
      if (is64) out.writeBigUInt64LE(BigInt(shnum), shoff + 32);
      else out.writeUInt32LE(shnum, shoff + 20);
      out.writeUInt32LE(shstrndx, shoff + (is64 ? 40 : 24));
      out.writeUInt16LE(0, at);
      out.writeUInt16LE(0xffff, at + 2);
      expect(readElfFile(out).sections.map((s) => s.name)).toEqual(readElfFile(b.binary).sections.map((s) => s.name));
      expect(readGoBuildInfo(out)).toStrictEqual(fromGo(b.goJson));
    }
  });
});

describe('readGoBuildInfo refuses what is not a Go host executable', () => {
  it('a truncated binary → host_binary_invalid, at any length', () => {
    const { binary } = hosts['linux-amd64'];
    const half = errorOf(() => readGoBuildInfo(binary.subarray(0, binary.length >> 1)));
    expect(half.code).toBe('host_binary_invalid');
    expect(half.message).toMatch(/^The host binary is not a valid ELF executable: .*beyond the end of the file/);
    for (const t of TARGET_IDS) {
      const b = hosts[t].binary;
      const lengths = [1, 4, 16, 20, 51, 52, 63, 64, 100, 1000, b.length - 1];
      for (let i = 1; i < 50; i++) lengths.push(Math.floor((b.length * i) / 50));
      for (const n of lengths) {
        const err = errorOf(() => readGoBuildInfo(b.subarray(0, n)));
        expect([n, err.code, err.cause]).toEqual([n, 'host_binary_invalid', undefined]);
      }
    }
  });

  it('an ELF executable not built by Go (/bin/true) → host_binary_no_buildinfo (400)', () => {
    const trueBinary = amd64.get('true');
    expect(trueBinary && readElfHeader(trueBinary)).toBeTruthy();
    const err = errorOf(() => readGoBuildInfo(trueBinary as Buffer));
    expect(err.code).toBe('host_binary_no_buildinfo');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/^The host binary is an ELF file but carries no Go build info/);
  });

  it('a Go binary whose blob is gone, misaligned or versionless → host_binary_no_buildinfo (Go: "not a Go executable")', () => {
    const { binary } = hosts['linux-amd64'];
    const section = readElfFile(binary).sections.find((s) => s.name === '.go.buildinfo');
    if (!section) throw new Error('no .go.buildinfo section');
    const damaged = (edit: (b: Buffer) => void) => {
      const b = Buffer.from(binary);
      edit(b);
      return b;
    };
    const cases = {
      'magic overwritten': damaged((b) => b.write('\xff Go buildinX:', section.offset, 'latin1')),
      // The blob must start on a 16-byte boundary of the section: move it 8 bytes in.
      misaligned: damaged((b) => {
        b.copyWithin(section.offset + 8, section.offset, section.offset + section.size - 8);
        b.fill(0, section.offset, section.offset + 8);
      }),
      'empty version string': damaged((b) => {
        b[section.offset + 32] = 0;
      }),
    };
    expect(readGoBuildInfo(damaged(() => undefined))).toStrictEqual(readGoBuildInfo(binary));
    for (const [what, bytes] of Object.entries(cases)) {
      const err = errorOf(() => readGoBuildInfo(bytes));
      expect([what, err.code]).toEqual([what, 'host_binary_no_buildinfo']);
    }
  });

  it('corrupted headers and build info give one of the two 400 errors, nothing else', () => {
    // A fixed xorshift sequence: failures reproduce.
    let state = 0x2545f491;
    const rand = (n: number) => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % n;
    };
    const outcomes = new Map<string, number>();
    for (const t of ['linux-amd64', 'linux-arm-7'] as const) {
      const bytes = Buffer.from(hosts[t].binary);
      const elf = readElfFile(bytes);
      const is64 = elf.is64;
      const shoff = is64 ? Number(bytes.readBigUInt64LE(40)) : bytes.readUInt32LE(32);
      const phoff = is64 ? Number(bytes.readBigUInt64LE(32)) : bytes.readUInt32LE(28);
      const shstrtab = elf.sections[is64 ? bytes.readUInt16LE(62) : bytes.readUInt16LE(50)];
      const buildinfo = elf.sections.find((s) => s.name === '.go.buildinfo');
      if (!shstrtab || !buildinfo) throw new Error('test binary lacks the sections to corrupt');
      const regions: [number, number][] = [
        [0, is64 ? 64 : 52],
        [phoff, elf.segments.length * (is64 ? 56 : 32)],
        [shoff, elf.sections.length * (is64 ? 64 : 40)],
        [shstrtab.offset, shstrtab.size],
        [buildinfo.offset, buildinfo.size],
      ];
      for (let i = 0; i < 4000; i++) {
        const [start, size] = regions[rand(regions.length)] as [number, number];
        const saved: [number, number][] = [];
        for (let k = 1 + rand(4); k > 0; k--) {
          const at = start + rand(size);
          saved.push([at, bytes[at] ?? 0]);
          bytes[at] = rand(4) === 0 ? 0xff : rand(256);
        }
        let outcome: string;
        try {
          readGoBuildInfo(bytes);
          outcome = 'read';
        } catch (err) {
          if (!(err instanceof PlugforgeError) || err.cause !== undefined || err.status !== 400) {
            throw new Error(`${t} mutation ${i} (${JSON.stringify(saved.map(([at]) => [at, bytes[at]]))}) threw ${String(err)}`, {
              cause: err,
            });
          }
          outcome = err.code;
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        for (const [at, v] of saved.reverse()) bytes[at] = v;
      }
    }
    expect([...outcomes.keys()].sort()).toEqual(['host_binary_invalid', 'host_binary_no_buildinfo', 'read']);
  });
});

describe('parseGoVersionM', () => {
  it('also reads runtime/debug.BuildInfo.String() text and CRLF line ends', () => {
    const { binary, versionM } = hosts['linux-amd64'];
    const expected = readGoBuildInfo(binary);
    const [header, ...rest] = versionM.trimEnd().split('\n');
    const stringForm = [`go\t${header?.split(': ')[1]}`, ...rest.map((l) => l.slice(1))].join('\n') + '\n';
    expect(parseGoVersionM(stringForm)).toStrictEqual(expected);
    expect(parseGoVersionM(versionM.replaceAll('\n', '\r\n'))).toStrictEqual(expected);
  });

  it("refuses text that is not one binary's build info → host_buildinfo_invalid (400)", () => {
    const { versionM } = hosts['linux-amd64'];
    const cases = [
      '',
      'hello world\n',
      '/bin/true: could not read Go build info from /bin/true: not a Go executable\n',
      versionM + versionM.replace('/tmp/out/plain/host', '/tmp/other'),
      'host: go1.22.12\n\tbuild\t-ldflags=-X a b\n',
      'host: go1.22.12\n\t=>\t./local\t(devel)\t\n',
      'host: go1.22.12\n\tdep\texample.com/dep\n',
      'host: go1.22.12\n\tbuild\tKEY="unterminated\n',
    ];
    for (const text of cases) {
      const err = errorOf(() => parseGoVersionM(text));
      expect([text, err.code, err.status]).toEqual([text, 'host_buildinfo_invalid', 400]);
      expect(err.message).toContain('go version -m <host>');
    }
  });
});
