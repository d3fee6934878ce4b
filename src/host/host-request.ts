import { createHash } from 'node:crypto';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { TARGET_IDS, TARGETS, type TargetId } from '../contract/targets.js';
import { readElfHeader } from '../verify/elf-header.js';
import { ElfFormatError } from '../verify/elf-sections.js';
import { parseGoVersionM, readGoBuildInfo } from '../verify/go-buildinfo.js';
import { readPackageFingerprints, type PackageFingerprints } from '../verify/package-fingerprints.js';
import {
  alignGoMod,
  describeHostBinary,
  hostModulesFromGoMod,
  mismatchError,
  type GoModGoLine,
  type HostArch,
  type HostMatch,
  type ModuleVersion,
} from './host-match.js';

/** The options of a build that describe its host (see BuildOptions). */
export interface HostOptions {
  go?: string;
  trimpath?: boolean;
  tags?: string[];
  strip?: boolean;
  hostGoMod?: string;
}

/** How the plugin is built beyond the toolchain: the host's -trimpath and -tags, and, only when asked for, stripped (-ldflags=-s -w). */
export interface PluginBuildSettings {
  trimpath: boolean;
  tags: string[];
  strip?: true;
  /** The main package built, "./server"; absent: the module root (the `package` option). */
  package?: string;
  /** An executable built with cgo (linux only; the `cgo` option); absent: pure Go. */
  cgo?: true;
}

/** `strip` is the plugin's own setting: what the host was built with has no say in it. */
function stripOf(options: HostOptions): { strip?: true } {
  return options.strip ? { strip: true } : {};
}

export interface HostResolution {
  /** The Go release to build with, when the host fixes it (a host binary); else the request's. */
  go?: string;
  /**
   * A host go.mod's toolchain (else go) line, when the request names no Go release: its
   * minor is built with, and hostMatch.notes must say which release that was (goModNote).
   */
  goModLine?: GoModGoLine;
  build: PluginBuildSettings;
  hostMatch?: HostMatch;
  /** Host executables, each matched to the target of its ELF machine, with its package fingerprints. */
  hostBinaries: HostBinary[];
}

/** One hostBinary part as read: the host its build info describes, and for an executable its target and fingerprints. */
export interface DescribedHostPart {
  host: ReturnType<typeof describeHostBinary>;
  binary?: HostBinary;
}

/** A hostBinary part, with its sha256 when it was computed as the part arrived. */
export type HostPart = Buffer | { bytes: Buffer; sha256: string };

/** A host executable given with a build, for the target its ELF header names. */
export interface HostBinary {
  target: TargetId;
  sha256: string;
  size: number;
  go: string;
  fingerprints: PackageFingerprints;
}

/**
 * Puts together what a build request says about its host: the options alone, or a host
 * go.mod (hostGoMod), or the host binary or its `go version -m` text (hostBinary). The
 * plugin is built the way the host was unless trimpath/tags are given explicitly, in which
 * case the plugin is built that way and the probe still follows the host, so verification
 * shows whether the host would load it. Aligns the plugin's go.mod to the host's modules.
 */
export function resolveHost(
  options: HostOptions,
  parts: readonly HostPart[],
  plugin: { goMod: string; vendored: boolean },
  targets: readonly TargetId[] = TARGET_IDS,
): HostResolution {
  if (parts.length && options.hostGoMod !== undefined) throw describedTwice();
  const described = parts.length ? describeHostBinaries(parts.map((p) => (Buffer.isBuffer(p) ? { bytes: p } : p))) : [];
  return resolveDescribedHost(options, described, plugin, targets);
}

function describedTwice(): PlugforgeError {
  return new PlugforgeError(
    'host_described_twice',
    'Give the host as hostGoMod or as hostBinary, not both: the binary already names the modules it links.',
  );
}

/**
 * resolveHost once the hostBinary parts have been read (describeHostBinaries): what a
 * registered host release keeps of its binaries is exactly this, so a build against it is
 * resolved as the upload of the same binaries would be (docs/hosts.md).
 */
export function resolveDescribedHost(
  options: HostOptions,
  hostBinaries: readonly DescribedHostPart[],
  plugin: { goMod: string; vendored: boolean },
  targets: readonly TargetId[] = TARGET_IDS,
): HostResolution {
  if (hostBinaries.length && options.hostGoMod !== undefined) throw describedTwice();
  if (!hostBinaries.length && options.hostGoMod === undefined) {
    return { build: { trimpath: options.trimpath ?? false, tags: options.tags ?? [], ...stripOf(options) }, hostBinaries: [] };
  }

  const fromBinaries = hostBinaries.length ? describedByBinaries(hostBinaries, options, targets) : undefined;
  const { go, binaries = [], archs = [], notes = [] } = fromBinaries ?? {};
  const trimpath = fromBinaries ? fromBinaries.described.trimpath : (options.trimpath ?? false);
  const tags = fromBinaries ? fromBinaries.described.tags : (options.tags ?? []);
  const described: { modules: ModuleVersion[]; notes: string[]; arch?: HostArch; goLine?: GoModGoLine } =
    fromBinaries?.described ?? hostModulesFromGoMod(options.hostGoMod ?? '');
  const goLine = !hostBinaries.length && !options.go ? described.goLine : undefined;
  const { text, aligned } = alignGoMod(plugin.goMod, described.modules);
  // Against a host built without -trimpath a vendored plugin is built from the module cache
  // (see vendorSetAside) and aligned like any other; with -trimpath it builds from vendor/,
  // whose versions cannot be changed here.
  if (plugin.vendored && trimpath && aligned.length) {
    throw mismatchError(aligned.map((a) => ({ path: a.path, host: a.to, plugin: a.from, requiredBy: ['vendor/modules.txt'] })));
  }
  const hostMatch: HostMatch = {
    from: hostBinaries.length ? 'binary' : 'goMod',
    ...(go ? { go } : {}),
    trimpath,
    tags,
    modules: described.modules,
    aligned,
    ...(aligned.length ? { goMod: text } : {}),
    ...(described.arch ? { arch: described.arch } : {}),
    ...(archs.length > 1 ? { archs } : {}),
    notes: [
      ...described.notes,
      ...notes,
      ...(plugin.vendored && !trimpath
        ? [
            'vendor/ is set aside: the host was built without -trimpath, so source paths enter the package hashes, and the plugin is built from the module cache as the host was',
          ]
        : []),
    ],
  };
  return {
    ...(go ? { go } : {}),
    ...(goLine ? { goModLine: goLine } : {}),
    build: { trimpath: options.trimpath ?? trimpath, tags: options.tags ?? tags, ...stripOf(options) },
    hostMatch,
    hostBinaries: binaries,
  };
}

/**
 * The host as its binaries describe it: the first one's build (Go release, trimpath, tags,
 * modules), each binary of a target the build has, every binary's architecture settings,
 * and notes on binaries left unused. A request asking for another Go release is refused.
 */
function describedByBinaries(hosts: readonly DescribedHostPart[], options: HostOptions, targets: readonly TargetId[]) {
  const host = hosts[0]!.host;
  if (options.go && host.go !== options.go && !host.go.startsWith(`${options.go}.`)) {
    throw new PlugforgeError(
      'host_go_conflict',
      `The host binary was built with go${host.go}, but the request asks for go ${options.go}; a plugin loads only into a host of the same Go release. Leave "go" out: it is taken from the binary.`,
      { status: 422 },
    );
  }
  const binaries: HostBinary[] = [];
  const archs: HostArch[] = [];
  const notes: string[] = [];
  for (const h of hosts) {
    if (h.host.arch) archs.push(h.host.arch);
    if (!h.binary) continue;
    if (targets.includes(h.binary.target)) binaries.push(h.binary);
    else notes.push(`the host binary for ${h.binary.target} was not used: ${h.binary.target} is not among the build's targets`);
  }
  return { go: host.go, described: host, binaries, archs, notes };
}

/**
 * Reads each hostBinary part: the build info of every one, and for executables the target
 * their ELF machine names and their package fingerprints. Several parts must all be
 * executables, of different targets, built with the same Go release.
 */
export function describeHostBinaries(parts: readonly { bytes: Buffer; sha256?: string }[]): DescribedHostPart[] {
  if (parts.length > 1 && !parts.every((p) => isElf(p.bytes))) {
    throw new PlugforgeError(
      'host_binary_invalid',
      'Several hostBinary parts must all be host executables (ELF), one per target; the text of `go version -m` describes one host and names no architecture: send it alone.',
    );
  }
  const out: DescribedHostPart[] = [];
  const seen = new Map<TargetId, number>();
  parts.forEach(({ bytes, sha256 }, index) => {
    if (!isElf(bytes)) {
      out.push({ host: describeHostBinary(parseGoVersionM(bytes.toString('utf8'))) });
      return;
    }
    const host = describeHostBinary(readGoBuildInfo(bytes));
    const target = targetOfElf(bytes);
    const other = seen.get(target);
    if (other !== undefined) {
      throw new PlugforgeError(
        'host_binary_invalid',
        `hostBinary parts ${other + 1} and ${index + 1} are both ${target} executables; give one host executable per target.`,
      );
    }
    seen.set(target, index);
    const fingerprints = hostFingerprints(bytes, target);
    if (!Object.keys(fingerprints).length) {
      throw new PlugforgeError(
        'host_cannot_load_plugins',
        `The ${target} host binary exports no package fingerprints (go:link.pkghashbytes.* in its dynamic symbol table): it was not built to load plugins. A Go program loads plugins only when it imports package "plugin" and is linked dynamically with cgo; plugin.Open in this program answers "plugin: not implemented" or is absent.`,
        { status: 422 },
      );
    }
    const [first] = out;
    if (first && first.host.go !== host.go) {
      throw new PlugforgeError(
        'host_binaries_disagree',
        `The host binaries were built with different Go releases (go${first.host.go} and go${host.go}, part ${index + 1}); a plugin build uses one release. Send the executables of one release of the host.`,
        { status: 422 },
      );
    }
    out.push({
      host,
      binary: { target, sha256: sha256 ?? createHash('sha256').update(bytes).digest('hex'), size: bytes.length, go: host.go, fingerprints },
    });
  });
  return out;
}

/** The package fingerprints a host executable exports; a file that cannot be read so is a bad upload (400). */
function hostFingerprints(bytes: Buffer, target: TargetId): PackageFingerprints {
  try {
    return readPackageFingerprints(bytes);
  } catch (err) {
    if (!(err instanceof ElfFormatError)) throw err;
    throw new PlugforgeError(
      'host_binary_invalid',
      `The ${target} host binary's dynamic symbol table cannot be read: ${err.message}. Upload the host program's Linux executable exactly as \`go build\` produced it.`,
    );
  }
}

/** The target an executable is for, from its ELF class and machine. */
function targetOfElf(bytes: Buffer): TargetId {
  const h = readElfHeader(bytes);
  const target = TARGET_IDS.find((t) => h && TARGETS[t].elfMachine === h.machine && TARGETS[t].elfClass === h.elfClass);
  if (!target) {
    throw new PlugforgeError(
      'host_binary_invalid',
      `The host binary is an ELF file for machine ${h?.machine ?? '?'} (class ${h?.elfClass ?? '?'}), which is none of plugforge's targets (${TARGET_IDS.map((t) => `${t}: ${TARGETS[t].elfMachineName}`).join(', ')}).`,
      { status: 422 },
    );
  }
  return target;
}

function isElf(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes.readUInt32BE(0) === 0x7f454c46;
}

/** The minor a host go.mod's Go line asks for (1.22.5 → 1.22): the release built with is this minor's. */
export function goModMinor(line: GoModGoLine): string {
  return line.version.split('.').slice(0, 2).join('.');
}

/**
 * The note a build from a host go.mod carries about its Go release: a go.mod names the
 * oldest Go the host builds with, not the one that built it, so the release plugforge
 * chose (the one it has for that minor) is said, with how to pin the host's own.
 */
export function goModNote(line: GoModGoLine, chosen: string): string {
  const exact = line.version === chosen;
  return exact
    ? `Go ${chosen}: from the host go.mod's "${line.text}"`
    : `Go ${chosen}: the host go.mod's "${line.text}" names the oldest Go the host builds with, not the release that built it; ${chosen} is the ${goModMinor(line)} release here. To build with the host's own release, send the host binary (hostBinary) or go=<that release>`;
}
