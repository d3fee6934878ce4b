import { PlugforgeError } from '../errors/plugforge-error.js';
import { parseGoVersionM, readGoBuildInfo } from '../verify/go-buildinfo.js';
import { alignGoMod, describeHostBinary, hostModulesFromGoMod, mismatchError, type HostArch, type HostMatch, type ModuleVersion } from './host-match.js';

/** The options of a build that describe its host (see BuildOptions). */
export interface HostOptions {
  go?: string;
  trimpath?: boolean;
  tags?: string[];
  hostGoMod?: string;
}

/** How the plugin is built beyond the toolchain. */
export interface PluginBuildSettings {
  trimpath: boolean;
  tags: string[];
}

export interface HostResolution {
  /** The Go release to build with, when the host fixes it (a host binary); else the request's. */
  go?: string;
  build: PluginBuildSettings;
  hostMatch?: HostMatch;
}

/**
 * Puts together what a build request says about its host: the options alone, or a host
 * go.mod (hostGoMod), or the host binary or its `go version -m` text (hostBinary). The
 * plugin is built the way the host was unless trimpath/tags are given explicitly, in which
 * case the plugin is built that way and the probe still follows the host, so verification
 * shows whether the host would load it. Aligns the plugin's go.mod to the host's modules.
 */
export function resolveHost(options: HostOptions, hostBinary: Buffer | undefined, plugin: { goMod: string; vendored: boolean }): HostResolution {
  if (hostBinary && options.hostGoMod !== undefined) {
    throw new PlugforgeError('host_described_twice', 'Give the host as hostGoMod or as hostBinary, not both: the binary already names the modules it links.');
  }
  if (!hostBinary && options.hostGoMod === undefined) {
    return { build: { trimpath: options.trimpath ?? false, tags: options.tags ?? [] } };
  }

  let go: string | undefined;
  let trimpath = options.trimpath ?? false;
  let tags = options.tags ?? [];
  let described: { modules: ModuleVersion[]; notes: string[]; arch?: HostArch };
  if (hostBinary) {
    const info = isElf(hostBinary) ? readGoBuildInfo(hostBinary) : parseGoVersionM(hostBinary.toString('utf8'));
    const host = describeHostBinary(info);
    if (options.go && host.go !== options.go && !host.go.startsWith(`${options.go}.`)) {
      throw new PlugforgeError('host_go_conflict', `The host binary was built with go${host.go}, but the request asks for go ${options.go}; a plugin loads only into a host of the same Go release. Leave "go" out: it is taken from the binary.`, { status: 422 });
    }
    ({ go, trimpath, tags } = host);
    described = host;
  } else {
    described = hostModulesFromGoMod(options.hostGoMod ?? '');
  }

  const { text, aligned } = alignGoMod(plugin.goMod, described.modules);
  // Against a host built without -trimpath a vendored plugin is built from the module cache
  // (see vendorSetAside) and aligned like any other; with -trimpath it builds from vendor/,
  // whose versions cannot be changed here.
  if (plugin.vendored && trimpath && aligned.length) {
    throw mismatchError(aligned.map((a) => ({ path: a.path, host: a.to, plugin: a.from, requiredBy: ['vendor/modules.txt'] })));
  }
  const hostMatch: HostMatch = {
    from: hostBinary ? 'binary' : 'goMod',
    ...(go ? { go } : {}),
    trimpath,
    tags,
    modules: described.modules,
    aligned,
    ...(aligned.length ? { goMod: text } : {}),
    ...(described.arch ? { arch: described.arch } : {}),
    notes: [
      ...described.notes,
      ...(plugin.vendored && !trimpath ? ['vendor/ is set aside: the host was built without -trimpath, so source paths enter the package hashes, and the plugin is built from the module cache as the host was'] : []),
    ],
  };
  return {
    ...(go ? { go } : {}),
    build: { trimpath: options.trimpath ?? trimpath, tags: options.tags ?? tags },
    hostMatch,
  };
}

function isElf(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes.readUInt32BE(0) === 0x7f454c46;
}
