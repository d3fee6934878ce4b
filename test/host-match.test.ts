import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { parseBuildOptions } from '../src/api/build-options.js';
import type { BuildRecord } from '../src/builds/build-document.js';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { alignGoMod, compareLinked, describeHostBinary, hostModulesFromGoMod, mismatchError } from '../src/host/host-match.js';
import { goModMinor, goModNote, resolveHost } from '../src/host/host-request.js';
import { TARGET_IDS } from '../src/contract/targets.js';
import { parseGoVersionM, type GoBuildInfo } from '../src/verify/go-buildinfo.js';
import { parseDownloadOutput } from '../src/worker/dependency-phase.js';
import { verifyPolicy } from '../src/worker/host-work.js';
import { DEPS_MARK, plan } from '../src/worker/plan.js';
import { loadConfig } from '../src/config.js';
import { workTar } from '../src/worker/source-tar.js';
import { hostileElf } from './support/hostile-elf.js';
import { tarOf } from './support/source.js';

const PLUGIN_GO_MOD = `module example.com/plug

go 1.22

require github.com/a/one v1.2.0 // direct

require (
	github.com/b/two v0.3.0
	"github.com/c/three" v1.0.0 // indirect
	github.com/d/four v2.0.0+incompatible
)
`;

const host = [
  { path: 'github.com/a/one', version: 'v1.1.0' },
  { path: 'github.com/c/three', version: 'v1.4.0' },
  { path: 'github.com/z/unrelated', version: 'v9.0.0' },
];

function caught(fn: () => unknown): PlugforgeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlugforgeError) return err;
    throw err;
  }
  throw new Error('expected a PlugforgeError');
}

function buildInfo(over: Partial<GoBuildInfo> = {}): GoBuildInfo {
  return {
    goVersion: 'go1.22.12',
    path: 'example.com/host',
    deps: [{ path: 'github.com/a/one', version: 'v1.1.0' }],
    settings: { CGO_ENABLED: '1', GOOS: 'linux', GOARCH: 'amd64' },
    trimpath: false,
    tags: [],
    ...over,
  };
}

describe('alignGoMod (gomod-cap on the server)', () => {
  it("sets every requirement the host shares to the host's version, up or down, and leaves the rest as written", () => {
    const { text, aligned } = alignGoMod(PLUGIN_GO_MOD, host);
    expect(aligned).toEqual([
      { path: 'github.com/a/one', from: 'v1.2.0', to: 'v1.1.0' },
      { path: 'github.com/c/three', from: 'v1.0.0', to: 'v1.4.0' },
    ]);
    expect(text).toBe(
      PLUGIN_GO_MOD.replace('one v1.2.0 // direct', 'one v1.1.0 // direct').replace(
        '"github.com/c/three" v1.0.0',
        '"github.com/c/three" v1.4.0',
      ),
    );
  });

  it('changes nothing when the versions already agree', () => {
    expect(alignGoMod(PLUGIN_GO_MOD, [{ path: 'github.com/b/two', version: 'v0.3.0' }])).toEqual({ text: PLUGIN_GO_MOD, aligned: [] });
  });
});

describe("the host's modules", () => {
  it('come from its go.mod requirements, replaced ones left out and noted', () => {
    const { modules, notes } = hostModulesFromGoMod(
      'module example.com/host\n\ngo 1.22\n\nrequire (\n\tgithub.com/a/one v1.1.0\n\tgithub.com/r/local v1.0.0\n)\n\nreplace github.com/r/local => ../local\n',
    );
    expect(modules).toEqual([{ path: 'github.com/a/one', version: 'v1.1.0' }]);
    expect(notes).toEqual(["github.com/r/local is replaced in the host's go.mod; its version is not matched"]);
  });

  it('refuse an unreadable go.mod with a code and what to send', () => {
    const err = caught(() => hostModulesFromGoMod('require github.com/a/one v1.1.0\n'));
    expect(err.code).toBe('host_gomod_invalid');
    expect(err.message).toContain('no module directive');
  });

  it("come from a binary's build info, with its Go release made exact and its settings", () => {
    expect(describeHostBinary(buildInfo({ goVersion: 'go1.20', trimpath: true, tags: ['netgo'] }))).toEqual({
      go: '1.20.0',
      trimpath: true,
      tags: ['netgo'],
      modules: [{ path: 'github.com/a/one', version: 'v1.1.0' }],
      notes: [],
      arch: { goarch: 'amd64' },
    });
    expect(describeHostBinary(buildInfo({ settings: { CGO_ENABLED: '1', GOARCH: '386', GO386: 'softfloat' } })).arch).toEqual({
      goarch: '386',
      go386: 'softfloat',
    });
  });

  it('refuse a host that cannot load plugins, or was not built by a Go release', () => {
    expect(caught(() => describeHostBinary(buildInfo({ settings: { CGO_ENABLED: '0' } }))).code).toBe('host_cannot_load_plugins');
    expect(caught(() => describeHostBinary(buildInfo({ settings: { CGO_ENABLED: '1', GOOS: 'darwin' } }))).code).toBe(
      'host_cannot_load_plugins',
    );
    expect(caught(() => describeHostBinary(buildInfo({ goVersion: 'devel go1.23-abcdef' }))).code).toBe('host_go_unsupported');
  });
});

describe("the host's description is bounded in work and in what the record keeps", () => {
  const text = (lines: string) => Buffer.from(`host: go1.22.12\n\tpath\texample.com/host\n${lines}\tbuild\tCGO_ENABLED=1\n`);
  const plugin = { goMod: PLUGIN_GO_MOD, vendored: false };

  it('refuses more than a few dep lines that name no module version, rather than noting each', () => {
    expect(resolveHost({}, [text('\tdep\texample.com/ws\t(devel)\n'.repeat(3))], plugin).hostMatch?.notes).toHaveLength(3);
    const err = caught(() => resolveHost({}, [text('\tdep\t!\tv\n'.repeat(51))], plugin));
    expect(err).toMatchObject({ code: 'host_buildinfo_invalid', status: 400 });
    expect(err.message).toContain('names 51 modules by something other than a module path and version');
  });

  it('refuses more dep lines than it matches modules, valid or not, and more lines than a host has', () => {
    expect(caught(() => resolveHost({}, [text('\tdep\t!\tv\n'.repeat(2001))], plugin)).code).toBe('host_too_large');
    expect(caught(() => parseGoVersionM(`host: go1.22.12\n${'\tbuild\tX=1\n'.repeat(5001)}`)).message).toContain('more than 5000 lines');
    expect(caught(() => parseGoVersionM(`host: go1.22.12\n\tpath\t${'x'.repeat(1024 * 1024)}\n`)).message).toContain(
      'longer than 1024 KiB',
    );
  });

  it('keeps 100 notes on replaced modules and counts the rest', () => {
    const replaced = Array.from({ length: 150 }, (_, i) => `\tdep\texample.com/m${i}\tv1.0.0\n\t=>\t../m${i}\t\t\n`).join('');
    const notes = resolveHost({}, [text(replaced)], plugin).hostMatch?.notes ?? [];
    expect(notes).toHaveLength(101);
    expect(notes[100]).toBe('and 50 more modules replaced in the host, not matched');
  });

  it('refuses crafted ELF hosts before walking their tables (sections, segments, symbols)', () => {
    for (const shape of [
      { sections: 65_536, symbols: 10, segments: 1 },
      { sections: 5, symbols: 10, segments: 65_535 },
      { sections: 5, symbols: 5002, segments: 1 },
      { sections: 6, symbols: 10, segments: 1 },
    ]) {
      const err = caught(() => resolveHost({}, [hostileElf(shape)], plugin, ['linux-amd64']));
      expect(err, JSON.stringify(shape)).toMatchObject({ code: 'host_binary_invalid', status: 400 });
    }
    // The same file with sane tables is read.
    expect(
      resolveHost({}, [hostileElf({ sections: 5, symbols: 10, segments: 3 })], plugin, ['linux-amd64']).hostBinaries[0]?.fingerprints,
    ).toEqual({ 'example.com/p': 'efcdab8967452301' });
  });
});

describe('compareLinked (the final build list against the host)', () => {
  const graph =
    'example.com/plug github.com/b/two@v0.3.0\ngithub.com/b/two@v0.3.0 github.com/a/one@v1.2.0\nexample.com/plug github.com/a/one@v1.1.0\n';

  it("names each module both link at different versions, both versions, and who requires the plugin's", () => {
    const mismatches = compareLinked(
      [
        { path: 'github.com/a/one', version: 'v1.2.0' },
        { path: 'github.com/b/two', version: 'v0.3.0' },
      ],
      host,
      graph,
    );
    expect(mismatches).toEqual([{ path: 'github.com/a/one', host: 'v1.1.0', plugin: 'v1.2.0', requiredBy: ['github.com/b/two@v0.3.0'] }]);
    const err = mismatchError(mismatches);
    expect(err).toMatchObject({ code: 'host_module_mismatch', status: 422 });
    expect(err.message).toContain(
      "github.com/a/one: the host links v1.1.0, the plugin's build would use v1.2.0 (required by github.com/b/two@v0.3.0)",
    );
  });

  it("finds nothing when every shared module is at the host's version", () => {
    expect(compareLinked([{ path: 'github.com/a/one', version: 'v1.1.0' }], host, graph)).toEqual([]);
  });
});

describe('resolveHost (what a request says about its host)', () => {
  const plugin = { goMod: PLUGIN_GO_MOD, vendored: false };
  const binary = Buffer.from(
    'host: go1.22.12\n\tpath\texample.com/host\n\tdep\tgithub.com/a/one\tv1.1.0\th1:x=\n\tbuild\tCGO_ENABLED=1\n\tbuild\t-trimpath=true\n\tbuild\t-tags=netgo\n',
  );

  it('without a host description, builds with the options given (or none)', () => {
    expect(resolveHost({ trimpath: true }, [], plugin)).toEqual({ build: { trimpath: true, tags: [] }, hostBinaries: [] });
  });

  it('from a binary: its Go release, trimpath and tags, for the plugin too unless the options say otherwise', () => {
    const r = resolveHost({}, [binary], plugin);
    expect(r.go).toBe('1.22.12');
    expect(r.build).toEqual({ trimpath: true, tags: ['netgo'] });
    expect(r.hostMatch).toMatchObject({
      from: 'binary',
      go: '1.22.12',
      trimpath: true,
      tags: ['netgo'],
      aligned: [{ path: 'github.com/a/one', from: 'v1.2.0', to: 'v1.1.0' }],
    });
    expect(r.hostMatch?.goMod).toContain('github.com/a/one v1.1.0');
    const off = resolveHost({ trimpath: false, go: '1.22' }, [binary], plugin);
    expect(off.build.trimpath).toBe(false);
    expect(off.hostMatch?.trimpath).toBe(true);
  });

  it('from a go.mod: its toolchain line (else its go line) picks the minor, and the note says which release was chosen and why', () => {
    const withToolchain = resolveHost({ hostGoMod: 'module example.com/host\n\ngo 1.22.1\n\ntoolchain go1.22.5\n' }, [], plugin);
    expect(withToolchain.goModLine).toEqual({ text: 'toolchain go1.22.5', version: '1.22.5' });
    expect(goModMinor(withToolchain.goModLine!)).toBe('1.22');
    expect(goModNote(withToolchain.goModLine!, '1.22.12')).toBe(
      'Go 1.22.12: the host go.mod\'s "toolchain go1.22.5" names the oldest Go the host builds with, not the release that built it; 1.22.12 is the 1.22 release here. To build with the host\'s own release, send the host binary (hostBinary) or go=<that release>',
    );
    expect(goModNote(withToolchain.goModLine!, '1.22.5')).toBe('Go 1.22.5: from the host go.mod\'s "toolchain go1.22.5"');
    expect(resolveHost({ hostGoMod: 'module example.com/host\n\ngo 1.23\n' }, [], plugin).goModLine).toEqual({
      text: 'go 1.23',
      version: '1.23',
    });
    // A release asked for explicitly, or fixed by a binary, is not second-guessed.
    expect(resolveHost({ hostGoMod: 'module example.com/host\n\ngo 1.23\n', go: '1.22' }, [], plugin).goModLine).toBeUndefined();
    expect(resolveHost({}, [binary], plugin).goModLine).toBeUndefined();
  });

  it('refuses a go option the binary contradicts, two host descriptions, and a vendored plugin at other versions', () => {
    expect(caught(() => resolveHost({ go: '1.24' }, [binary], plugin)).code).toBe('host_go_conflict');
    expect(caught(() => resolveHost({ hostGoMod: 'module x\n' }, [binary], plugin)).code).toBe('host_described_twice');
    const hostGoMod = 'module example.com/host\n\nrequire github.com/a/one v1.1.0\n';
    const vendored = caught(() => resolveHost({ hostGoMod, trimpath: true }, [], { ...plugin, vendored: true }));
    expect(vendored.code).toBe('host_module_mismatch');
    expect(vendored.message).toContain(
      "github.com/a/one: the host links v1.1.0, the plugin's build would use v1.2.0 (required by vendor/modules.txt)",
    );
    // Without -trimpath vendor/ is set aside (the host read the module cache), so alignment applies.
    const setAside = resolveHost({ hostGoMod }, [], { ...plugin, vendored: true });
    expect(setAside.hostMatch?.aligned).toEqual([{ path: 'github.com/a/one', from: 'v1.2.0', to: 'v1.1.0' }]);
    expect(setAside.hostMatch?.notes.join('\n')).toContain('vendor/ is set aside');
  });
});

describe('architecture settings (they enter the package hashes)', () => {
  const config = loadConfig({});
  const record = (hostMatch?: BuildRecord['hostMatch']): BuildRecord => ({
    id: 'abc',
    tenant: 'public',
    createdAt: '',
    go: '1.22.12',
    goRequested: '1.22',
    name: 'p',
    mode: 'plugin',
    host: 'generic',
    targetIds: ['linux-amd64', 'linux-386'],
    source: { sha256: 'x', size: 1, module: 'm', vendored: false, requirements: false },
    ...(hostMatch ? { hostMatch } : {}),
  });
  const envOf = (r: BuildRecord, t: 'linux-amd64' | 'linux-386') =>
    plan(r, t, config, { workerId: 'w', instanceId: 'i' }).container.env.filter((e) => /^GO(386|AMD64)=/.test(e));
  const host = (arch: NonNullable<BuildRecord['hostMatch']>['arch']) => ({
    from: 'binary' as const,
    trimpath: false,
    tags: [],
    modules: [],
    aligned: [],
    notes: [],
    ...(arch ? { arch } : {}),
  });

  it("builds 386 with GO386=sse2, the default of Go's releases, and amd64 with the toolchain default", () => {
    expect(envOf(record(), 'linux-386')).toEqual(['GO386=sse2']);
    expect(envOf(record(), 'linux-amd64')).toEqual([]);
  });

  it('follows a host binary of the same GOARCH', () => {
    expect(envOf(record(host({ goarch: '386', go386: 'softfloat' })), 'linux-386')).toEqual(['GO386=softfloat']);
    expect(envOf(record(host({ goarch: 'amd64', goamd64: 'v3' })), 'linux-amd64')).toEqual(['GOAMD64=v3']);
    expect(envOf(record(host({ goarch: 'amd64', goamd64: 'v3' })), 'linux-386')).toEqual(['GO386=sse2']);
  });
});

describe('build options of host matching', () => {
  const all = [...TARGET_IDS];
  it('reads trimpath, tags and verify', () => {
    expect(parseBuildOptions({ trimpath: 'true', tags: 'netgo,osusergo', verify: 'warn' }, all)).toMatchObject({
      trimpath: true,
      tags: ['netgo', 'osusergo'],
      verify: 'warn',
    });
    expect(parseBuildOptions({ tags: '' }, all).tags).toEqual([]);
  });

  it.each([
    ['tags', 'a b'],
    ['tags', '-race'],
    ['tags', 'x,$(id)'],
    ['tags', 'a,,b'],
    ['trimpath', 'yes'],
    ['verify', 'off'],
  ])('refuses %s=%s', (key, value) => {
    expect(caught(() => parseBuildOptions({ [key]: value }, all))).toMatchObject({ code: 'invalid_option' });
  });
});

describe("the dependency script's output", () => {
  it('is split into its sections; a failed listing leaves the linked modules unknown', () => {
    const text = [
      DEPS_MARK.cached,
      '{\n\t"Path": "a", "Version": "v1.0.0"\n}',
      DEPS_MARK.download,
      '{\n\t"Path": "a", "Version": "v1.0.0"\n}',
      '{\n\t"Path": "b", "Version": "v2.0.0"\n}',
      DEPS_MARK.linked,
      'a v1.0.0',
      DEPS_MARK.graph,
      'm a@v1.0.0',
      '',
    ].join('\n');
    const out = parseDownloadOutput(text);
    expect(out.download.map((m) => m.Path)).toEqual(['a', 'b']);
    expect(out.linked?.trim()).toBe('a v1.0.0');
    expect(out.graph?.trim()).toBe('m a@v1.0.0');
    expect(
      parseDownloadOutput(text.replace('a v1.0.0\n{"plugforge":"graph"}', `${DEPS_MARK.listFailed}\n${DEPS_MARK.graph}`)).linked,
    ).toBeUndefined();
  });
});

describe('workTar with host matching', () => {
  async function entries(stream: Readable): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const extract = tar.extract();
    extract.on('entry', (h, s, next) => {
      const chunks: Buffer[] = [];
      s.on('data', (c) => chunks.push(c as Buffer));
      s.on('end', () => {
        out[h.name] = Buffer.concat(chunks).toString();
        next();
      });
    });
    const done = new Promise<void>((resolve) => extract.on('finish', () => resolve()));
    stream.pipe(extract);
    await done;
    return out;
  }

  it('puts the aligned go.mod, appends the added go.sum lines, writes the probe package and drops an uploaded one', async () => {
    const source = await tarOf({
      'go.mod': 'module x\n',
      'go.sum': 'a v1 h1:x=',
      'p.go': 'package main\n',
      '.plugforge-probe/evil.go': 'package main\n',
    });
    const files = await entries(
      workTar(Readable.from([source]), {
        goMod: 'module x\n\nrequire a v1\n',
        goSumAdded: ['b v1 h1:y=', 'b v1/go.mod h1:z='],
        hostModules: ['b'],
      }),
    );
    expect(files['src/go.mod']).toBe('module x\n\nrequire a v1\n');
    expect(files['src/go.sum']).toBe('a v1 h1:x=\nb v1 h1:y=\nb v1/go.mod h1:z=\n');
    expect(files['src/p.go']).toBe('package main\n');
    expect(files['src/.plugforge-probe/evil.go']).toBeUndefined();
    expect(files['src/.plugforge-probe/host-modules.txt']).toBe('b\n');
    expect(files['src/.plugforge-probe/main.go']).toContain('plugin.Open');
  });
});

describe('verify=warn', () => {
  const record = (verifyMode: 'strict' | 'warn') => ({ verifyMode }) as BuildRecord;
  const failedVerification = {
    status: 'failed' as const,
    artifact: { name: 'p.so', size: 1, sha256: 'x' },
    verify: { status: 'failed' as const, message: 'plugin.Open refused it' },
    error: { code: 'plugin_load_failed', message: 'p.so: refused' },
  };

  it('turns a failed verification into a success that says so; strict keeps the failure', () => {
    expect(verifyPolicy(record('strict'), failedVerification)).toBe(failedVerification);
    const warned = verifyPolicy(record('warn'), failedVerification);
    expect(warned).toMatchObject({ status: 'succeeded', verify: { status: 'failed' } });
    expect(warned.verify?.message).toContain('plugin_load_failed');
    expect(warned.error).toBeUndefined();
  });

  it('leaves a compile failure failed', () => {
    const compile = { status: 'failed' as const, error: { code: 'compile_failed', message: 'x' } };
    expect(verifyPolicy(record('warn'), compile)).toBe(compile);
  });
});
