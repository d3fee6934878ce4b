import { GoModSyntaxError, MODULE_VERSION, modulePathProblem, parseGoMod } from '../archive/go-mod.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { GoBuildInfo } from '../verify/go-buildinfo.js';

/** A module at one version, as a host links it or a plugin requires it. */
export interface ModuleVersion {
  path: string;
  version: string;
}

/** One requirement of the plugin's go.mod that alignment moved to the host's version. */
export interface AlignedModule {
  path: string;
  from: string;
  to: string;
}

/**
 * What plugforge knows about the host program a plugin must load into, beyond the Go
 * release: how it was built (trimpath, tags) and the module versions it links. Kept in the
 * build record; the loading probe is built to match it.
 */
export interface HostMatch {
  /** Where the description came from: the host's go.mod, or its binary's build info. */
  from: 'goMod' | 'binary';
  /** The exact Go release of a host binary ("1.22.12"); a go.mod does not tell. */
  go?: string;
  trimpath: boolean;
  tags: string[];
  /** The host's modules (its go.mod requirements, or the modules its binary links), by path. */
  modules: ModuleVersion[];
  /** What alignment changed in the plugin's go.mod. */
  aligned: AlignedModule[];
  /** The plugin's go.mod after alignment, when alignment changed it. */
  goMod?: string;
  /** What could not be matched and was left as it is (e.g. modules the host replaces). */
  notes: string[];
  /** Architecture settings of a host binary (they enter package hashes too): applied to the target of the binary's GOARCH. */
  arch?: HostArch;
  /** Those of every host binary, where several were given (one per target). */
  archs?: HostArch[];
  /** The registered host release the description came from (`gotify@2.4.0`), when the build named one (hosts=). */
  release?: string;
}

/** GO386 / GOAMD64 of a host binary, for its GOARCH. */
export interface HostArch {
  goarch: string;
  go386?: 'sse2' | 'softfloat';
  goamd64?: 'v1' | 'v2' | 'v3' | 'v4';
}

/** Build tags: what `go build -tags` accepts, and nothing a shell or a flag parser could misread. */
export const TAG_RE = /^[A-Za-z0-9_.]{1,64}$/;
/** Host module lists are capped: a real program links a few hundred modules at most. */
const MAX_HOST_MODULES = 2000;
/**
 * Build info of a real host names every module by a valid path and version, but for the
 * few a workspace builds at (devel): past this many others the text is refused rather
 * than noted, one note each, in the build record (docs/decisions.md, "Host matching").
 */
const MAX_UNMATCHABLE_DEPS = 50;
/** Module paths are far shorter; a longer one is not matched, so a record cannot grow with it. */
const MAX_MODULE_PATH = 256;
/** The notes on replaced modules kept in the record; past it, one note says how many more. */
const MAX_REPLACE_NOTES = 100;
/** Build tags of a host (its -tags setting); a request's own are at most 20. */
const MAX_HOST_TAGS = 64;

/**
 * The modules a host's go.mod requires. Since Go 1.17 a go.mod lists every module that
 * provides a package the program builds, so these are the versions the host links.
 * Replaced modules are left out (their code is not the version named) and noted.
 */
export function hostModulesFromGoMod(text: string): { modules: ModuleVersion[]; notes: string[]; goLine?: GoModGoLine } {
  let parsed;
  try {
    parsed = parseGoMod(text);
  } catch (err) {
    if (err instanceof GoModSyntaxError) {
      throw new PlugforgeError(
        'host_gomod_invalid',
        `The host go.mod (hostGoMod) cannot be read: ${err.message}. Send the host program's go.mod file as it is.`,
      );
    }
    throw err;
  }
  const replaced = new Set(parsed.replaced);
  const modules = parsed.requires.filter((r) => !replaced.has(r.path));
  const notes = replacedNotes(
    parsed.requires
      .filter((r) => replaced.has(r.path))
      .map((r) => `${r.path} is replaced in the host's go.mod; its version is not matched`),
  );
  // The toolchain line, else the go line: the oldest Go the host builds with.
  const goLine: GoModGoLine | undefined = parsed.toolchain
    ? { text: `toolchain ${parsed.toolchain}`, version: parsed.toolchain.replace(/^go/, '') }
    : parsed.go
      ? { text: `go ${parsed.go}`, version: parsed.go }
      : undefined;
  return { modules: capped(dedupe(modules)), notes, ...(goLine ? { goLine } : {}) };
}

/** The line of a host go.mod that names a Go release, and the release (e.g. 1.22.5 or 1.22). */
export interface GoModGoLine {
  text: string;
  version: string;
}

/**
 * The modules a host binary links, from its build info. A module the host replaced with
 * another module version is matched at the replacement (that is the code the host links);
 * one replaced by a local directory cannot be matched and is noted.
 */
export function hostModulesFromBuildInfo(info: GoBuildInfo): { modules: ModuleVersion[]; notes: string[] } {
  if (info.deps.length > MAX_HOST_MODULES) throw tooManyModules(info.deps.length);
  const modules: ModuleVersion[] = [];
  const unmatchable: string[] = [];
  const replaced: string[] = [];
  const quoted = (text: string, max: number) => JSON.stringify(text.slice(0, max));
  for (const dep of info.deps) {
    if (dep.path.length > MAX_MODULE_PATH || modulePathProblem(dep.path) || !MODULE_VERSION.test(dep.version))
      unmatchable.push(`${quoted(dep.path, 200)} ${quoted(dep.version, 80)} is not a module version plugforge can match`);
    else if (!dep.replace) modules.push({ path: dep.path, version: dep.version });
    else if (dep.replace.path === dep.path && dep.replace.version && MODULE_VERSION.test(dep.replace.version))
      modules.push({ path: dep.path, version: dep.replace.version });
    else if (dep.replace.version)
      replaced.push(
        `${dep.path} ${dep.version} is replaced in the host by ${quoted(dep.replace.path, 200)} ${quoted(dep.replace.version, 80)}; its version is not matched (a plugin must use the same replace directive)`,
      );
    else replaced.push(`${dep.path} is replaced in the host by the directory ${quoted(dep.replace.path, 200)}; its version is not matched`);
  }
  if (unmatchable.length > MAX_UNMATCHABLE_DEPS) {
    throw new PlugforgeError(
      'host_buildinfo_invalid',
      `The host build info names ${unmatchable.length} modules by something other than a module path and version (the first: ${unmatchable[0]}); a real host names at most a few (workspace modules at (devel)). Send the output of \`go version -m <host>\` unchanged, or the host executable.`,
    );
  }
  return { modules: capped(dedupe(modules)), notes: [...unmatchable, ...replacedNotes(replaced)] };
}

/** The first MAX_REPLACE_NOTES notes on replaced modules, and one saying how many more there were. */
function replacedNotes(notes: string[]): string[] {
  const more = notes.length - MAX_REPLACE_NOTES;
  return more > 0 ? [...notes.slice(0, MAX_REPLACE_NOTES), `and ${more} more modules replaced in the host, not matched`] : notes;
}

/**
 * Checks that a host binary can load plugins at all and names what the plugin build must
 * match. Throws a 422 for a host that cannot load any plugin.
 */
export function describeHostBinary(info: GoBuildInfo): {
  go: string;
  trimpath: boolean;
  tags: string[];
  modules: ModuleVersion[];
  notes: string[];
  arch?: HostArch;
} {
  if (info.settings.CGO_ENABLED === '0') {
    throw new PlugforgeError(
      'host_cannot_load_plugins',
      'The host binary was built with CGO_ENABLED=0; Go programs built without cgo cannot load plugins (plugin.Open answers "plugin: not implemented"). Rebuild the host with CGO_ENABLED=1.',
      { status: 422 },
    );
  }
  if (info.settings.GOOS && info.settings.GOOS !== 'linux') {
    throw new PlugforgeError(
      'host_cannot_load_plugins',
      `The host binary is built for GOOS=${info.settings.GOOS}; plugforge builds plugins for Linux hosts only.`,
      { status: 422 },
    );
  }
  const release = /^(?:go)?(\d+\.\d+)(\.\d+)?$/.exec(info.goVersion.trim());
  // "go1.20" is the release 1.20.0: the exact release is what a plugin must match.
  const go = release ? `${release[1]}${release[2] ?? '.0'}` : undefined;
  if (!go) {
    throw new PlugforgeError(
      'host_go_unsupported',
      `The host binary was built with "${info.goVersion}", not a Go release; plugforge matches released toolchains (such as go1.22.12) only.`,
      { status: 422 },
    );
  }
  const tags = info.tags.filter(Boolean);
  if (tags.length > MAX_HOST_TAGS)
    throw new PlugforgeError(
      'host_buildinfo_invalid',
      `The host was built with ${tags.length} build tags; plugforge matches hosts of at most ${MAX_HOST_TAGS}.`,
    );
  const bad = tags.find((t) => !TAG_RE.test(t));
  if (bad !== undefined)
    throw new PlugforgeError(
      'host_buildinfo_invalid',
      `The host was built with a build tag plugforge does not accept ("${bad.slice(0, 64)}"); tags are letters, digits, dots and underscores.`,
    );
  const arch = archOf(info.settings);
  return { go, trimpath: info.trimpath, tags, ...hostModulesFromBuildInfo(info), ...(arch ? { arch } : {}) };
}

/** The binary's GOARCH and its GO386/GOAMD64 level, when they are values Go accepts. */
function archOf(settings: Record<string, string>): HostArch | undefined {
  const goarch = settings.GOARCH;
  if (!goarch || !/^[a-z0-9]{1,16}$/.test(goarch)) return undefined;
  const go386 = settings.GO386;
  const goamd64 = settings.GOAMD64;
  return {
    goarch,
    ...(go386 === 'sse2' || go386 === 'softfloat' ? { go386 } : {}),
    ...(goamd64 === 'v1' || goamd64 === 'v2' || goamd64 === 'v3' || goamd64 === 'v4' ? { goamd64 } : {}),
  };
}

/**
 * What gomod-cap does, done on the server: every module the plugin's go.mod requires that
 * the host also has is set to the host's version (up or down). Only `require` lines
 * change; comments, order and everything else stay. The final build list is checked
 * later (minimal version selection may raise a version again, see compareLinked).
 */
export function alignGoMod(pluginGoMod: string, host: readonly ModuleVersion[]): { text: string; aligned: AlignedModule[] } {
  const hostVersion = new Map(host.map((m) => [m.path, m.version]));
  const aligned: AlignedModule[] = [];
  let inRequireBlock = false;
  const lines = pluginGoMod.split('\n').map((line) => {
    const code = line.replace(/\/\/.*$/, '').trim();
    if (inRequireBlock) {
      if (code === ')') {
        inRequireBlock = false;
        return line;
      }
      return alignLine(line, /^(\s*)("?)([^\s"]+)\2(\s+)(\S+)/, hostVersion, aligned);
    }
    if (/^require\s*\($/.test(code)) {
      inRequireBlock = true;
      return line;
    }
    if (/^require\s/.test(code)) return alignLine(line, /^(\s*require\s+)("?)([^\s"]+)\2(\s+)(\S+)/, hostVersion, aligned);
    return line;
  });
  return { text: lines.join('\n'), aligned };
}

function alignLine(line: string, re: RegExp, hostVersion: Map<string, string>, aligned: AlignedModule[]): string {
  const m = re.exec(line);
  if (!m) return line;
  const [whole, lead = '', quote = '', path = '', gap = '', version = ''] = m;
  const want = hostVersion.get(path);
  if (!want || want === version) return line;
  aligned.push({ path, from: version, to: want });
  return `${lead}${quote}${path}${quote}${gap}${want}${line.slice(whole.length)}`;
}

/** A module both link at different versions: the plugin would be refused by the host. */
export interface ModuleMismatch {
  path: string;
  host: string;
  plugin: string;
  /** Who in the plugin's module graph requires the plugin's version (from `go mod graph`). */
  requiredBy: string[];
}

/**
 * Compares the modules the plugin links (after minimal version selection) with the host's:
 * every module both have must be at the same version, or plugin.Open in the host refuses
 * the plugin ("plugin was built with a different version of package …").
 */
export function compareLinked(linked: readonly ModuleVersion[], host: readonly ModuleVersion[], graph = ''): ModuleMismatch[] {
  const hostVersion = new Map(host.map((m) => [m.path, m.version]));
  const out: ModuleMismatch[] = [];
  for (const m of dedupe([...linked])) {
    const want = hostVersion.get(m.path);
    if (want && want !== m.version)
      out.push({ path: m.path, host: want, plugin: m.version, requiredBy: requirersOf(graph, m.path, m.version) });
  }
  return out;
}

/** The modules that require path@version, from `go mod graph` output ("A@v B@v" per line). */
export function requirersOf(graph: string, path: string, version: string): string[] {
  const target = `${path}@${version}`;
  const out = new Set<string>();
  for (const line of graph.split('\n')) {
    const [from, to] = line.trim().split(/\s+/);
    if (to === target && from && from.includes('@')) out.add(from);
  }
  return [...out].sort();
}

/** The refusal for mismatched modules: each module and both versions named. */
export function mismatchError(mismatches: readonly ModuleMismatch[]): PlugforgeError {
  const lines = mismatches.map(
    (m) =>
      `${m.path}: the host links ${m.host}, the plugin's build would use ${m.plugin}${m.requiredBy.length ? ` (required by ${m.requiredBy.join(', ')})` : ''}`,
  );
  return new PlugforgeError(
    'host_module_mismatch',
    `The plugin cannot load into this host: after aligning its go.mod to the host's, minimal version selection still picks other versions of modules the host links.\n${lines.join('\n')}\nUse versions of those dependencies that accept the host's versions, or build the host with the newer ones.`,
    {
      status: 422,
      details: { modules: mismatches.map((m) => ({ path: m.path, host: m.host, plugin: m.plugin, requiredBy: m.requiredBy })) },
    },
  );
}

/** Lines "path version" (as the dependency script prints them) to modules, the main module's empty version left out. */
export function parseModuleLines(text: string): ModuleVersion[] {
  const out: ModuleVersion[] = [];
  for (const line of text.split('\n')) {
    const [path, version] = line.trim().split(/\s+/);
    if (path && version) out.push({ path, version });
  }
  return dedupe(out);
}

function dedupe(modules: ModuleVersion[]): ModuleVersion[] {
  const seen = new Map<string, ModuleVersion>();
  for (const m of modules) if (!seen.has(m.path)) seen.set(m.path, m);
  return [...seen.values()].sort((a, b) => a.path.localeCompare(b.path));
}

function capped(modules: ModuleVersion[]): ModuleVersion[] {
  if (modules.length > MAX_HOST_MODULES) throw tooManyModules(modules.length);
  return modules;
}

function tooManyModules(count: number): PlugforgeError {
  return new PlugforgeError('host_too_large', `The host names ${count} modules; plugforge matches at most ${MAX_HOST_MODULES}.`);
}
