import { z } from 'zod';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { ALL_TARGET_IDS, MATTERMOST_TARGETS, TARGETS, type TargetId } from '../contract/targets.js';
import { HOST_NAME_RE, HOST_VERSION_RE } from '../contract/api-schemas.js';

/** Artifact base names: what gotify-style file names allow, nothing a shell or a path could misread. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** `tags`: a comma-separated list (go build -tags), each tag from TAG_RE, at most 20; empty means none. */
const TAGS_RE = /^$|^[A-Za-z0-9_.]{1,64}(,[A-Za-z0-9_.]{1,64}){0,19}$/;

export const optionsSchema = z
  .object({
    go: z
      .string()
      .regex(/^(go)?\d+\.\d+(\.\d+)?$/, 'must be a Go release such as 1.22 or 1.22.12')
      .optional(),
    targets: z.string().optional(),
    name: z
      .string()
      .regex(NAME_RE, 'must be 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit')
      .optional(),
    mode: z
      .enum(['plugin', 'exe'])
      .optional()
      .describe('plugin (default), or exe; exe is the default when the targets include darwin or windows (targets=mattermost)'),
    cgo: z
      .enum(['true', 'false'])
      .optional()
      .describe(
        'mode=exe: build linux executables with cgo (default false: pure Go, CGO_ENABLED=0, as Mattermost builds); darwin and windows are always pure Go',
      ),
    host: z.enum(['gotify', 'flow', 'generic']).default('generic'),
    trimpath: z.enum(['true', 'false']).optional(),
    strip: z.enum(['true', 'false']).optional(),
    tags: z.string().regex(TAGS_RE, 'must be build tags separated by commas (letters, digits, dots, underscores; at most 20)').optional(),
    verify: z.enum(['strict', 'warn', 'loaded']).default('strict'),
    package: z
      .string()
      .max(256, 'must be a package directory of at most 256 characters')
      .optional()
      .describe('the main package to build, a directory inside the module such as ./server (default: ., the module root)'),
    hostGoMod: z
      .string()
      .max(256 * 1024, 'must be a go.mod of at most 256 KiB')
      .optional(),
    hosts: z
      .string()
      .regex(
        /^[a-z0-9][a-z0-9._-]{0,63}@[0-9A-Za-z.+_-]{1,65}(,[a-z0-9][a-z0-9._-]{0,63}@[0-9A-Za-z.+_-]{1,65}){0,19}$/,
        'must name registered host releases as <name>@<version>, separated by commas, such as gotify@2.3.0,gotify@2.4.0',
      )
      .optional()
      .describe(
        'the registered host releases (POST /v1/hosts) the build is described by, as if their binaries, text or go.mod had been uploaded; several (at most 8) build every release and target of a matrix (docs/hosts.md)',
      ),
    callback: z
      .string()
      .max(2048, 'must be a URL of at most 2048 characters')
      .optional()
      .describe('a URL the build\'s summary is POSTed to once it has ended, signed with the tenant\'s secret (docs/hosts.md, "Callbacks")'),
    reuse: z
      .enum(['on', 'off'])
      .optional()
      .describe(
        "off: build anew, neither taking an identical build's artifacts nor offering this one's (docs/decisions.md, \"The same build is never run twice\"); on (default): as the installation's PLUGFORGE_REUSE says",
      ),
  })
  .strict();

export interface BuildOptions {
  go?: string;
  targets: TargetId[];
  name?: string;
  mode: 'plugin' | 'exe';
  /** mode=exe on linux only: with cgo (CGO_ENABLED=1); undefined: pure Go. */
  cgo?: true;
  host: 'gotify' | 'flow' | 'generic';
  /** -trimpath for the plugin (and the host, unless a host binary says otherwise); undefined when not given. */
  trimpath?: boolean;
  /** Link without the symbol table and DWARF (-ldflags=-s -w), as gotify's plugin template builds; the plugin's own setting, not the host's. */
  strip?: boolean;
  /** -tags for the plugin (and the host, unless a host binary says otherwise); undefined when not given. */
  tags?: string[];
  /** strict: a plugin that fails verification fails its target; warn: it succeeds with verify.status failed; loaded: as strict, and it must be loaded by the probe. */
  verify: 'strict' | 'warn' | 'loaded';
  /** The main package to build, relative to the module root ("./server"); undefined: the root. */
  package?: string;
  /** The host program's go.mod text: align the plugin's requirements to it. */
  hostGoMod?: string;
  /** The registered host releases the build names (hosts=<name>@<version>,…), versions without a leading "v": one, or a matrix of up to MAX_MATRIX_RELEASES. */
  hosts?: HostReleaseRef[];
  /** Where the build's summary is POSTed once it has ended (checked against the operator's list on submission). */
  callback?: string;
  /** off: the build neither shares an identical build's run nor is offered to later ones; undefined: as the installation says. */
  reuse?: 'off';
}

/** The option names, for messages. */
export const OPTION_NAMES = [
  'go',
  'targets',
  'name',
  'mode',
  'cgo',
  'host',
  'trimpath',
  'strip',
  'tags',
  'verify',
  'package',
  'hostGoMod',
  'hostBinary',
  'hosts',
  'callback',
  'reuse',
] as const;

/**
 * Checks the options of POST /v1/builds (from the query string or form fields). Unknown
 * options are refused rather than ignored, so a typo never builds something else.
 */
export function parseBuildOptions(raw: Record<string, unknown>, defaultTargets: readonly string[]): BuildOptions {
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new PlugforgeError('invalid_option', `Option "${k}" was given more than once or is not text.`);
    flat[k] = v;
  }
  const parsed = optionsSchema.safeParse(flat);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === 'unrecognized_keys') {
      throw new PlugforgeError(
        'unknown_option',
        `Unknown option ${issue.keys.map((k) => `"${k}"`).join(', ')}; the options are ${OPTION_NAMES.join(', ')}.`,
      );
    }
    const field = String(issue?.path[0] ?? 'option');
    const allowed = ALLOWED_VALUES[field] ?? '';
    throw new PlugforgeError('invalid_option', `Option "${field}": ${issue?.message ?? 'invalid'}${allowed}.`);
  }
  const o = parsed.data;
  const { targets, mode } = targetsOption(o.targets ?? defaultTargets.join(','), o.mode, o.cgo === 'true');
  return {
    ...(o.go ? { go: o.go.replace(/^go/, '') } : {}),
    targets,
    ...(o.name ? { name: o.name } : {}),
    mode,
    ...(o.cgo === 'true' ? { cgo: true } : {}),
    host: o.host,
    ...(o.trimpath !== undefined ? { trimpath: o.trimpath === 'true' } : {}),
    ...(o.strip === 'true' ? { strip: true } : {}),
    ...(o.tags !== undefined ? { tags: o.tags.split(',').filter(Boolean) } : {}),
    verify: o.verify,
    ...packageOption(o.package),
    ...(o.hostGoMod !== undefined ? { hostGoMod: o.hostGoMod } : {}),
    ...(o.hosts !== undefined ? { hosts: hostsOption(o.hosts) } : {}),
    ...(o.reuse === 'off' ? { reuse: 'off' as const } : {}),
    ...(o.callback !== undefined ? { callback: o.callback } : {}),
  };
}

/** A package directory's elements: what Go import paths allow in a directory name, never "." or "..". */
const PACKAGE_ELEMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

/**
 * `package`: a directory inside the module, as `go build` names one (./server, server/cmd
 * or .), at most 16 elements; normalized to "./a/b", or nothing for the module root.
 * Absolute paths and ".." are refused: the build runs `go build <package>` in the module.
 */
function packageOption(text: string | undefined): { package?: string } {
  if (text === undefined) return {};
  const elements = text
    .replace(/(.)\/$/, '$1')
    .split('/')
    .filter((e, i) => !(i === 0 && e === '.'));
  if (text === '.' || text === './') return {};
  const bad = text.startsWith('/') || elements.length > 16 || elements.some((e) => !PACKAGE_ELEMENT_RE.test(e));
  if (bad) {
    throw new PlugforgeError(
      'invalid_option',
      `Option "package": "${text.slice(0, 80)}" is not a package directory inside the module: name one relative to go.mod, such as ./server (no "..", not absolute, at most 16 elements of letters, digits, dots, dashes or underscores).`,
    );
  }
  return { package: `./${elements.join('/')}` };
}

/**
 * `targets` (mattermost: the starter template's five), checked against the mode: darwin
 * and windows are executables only, and cgo (mode=exe) builds linux executables only.
 */
function targetsOption(text: string, asked: 'plugin' | 'exe' | undefined, cgo: boolean): { targets: TargetId[]; mode: 'plugin' | 'exe' } {
  const targetList = text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    // The five platforms of Mattermost's plugin starter template.
    .flatMap((t) => (t === 'mattermost' ? [...MATTERMOST_TARGETS] : [t]));
  const unknown = targetList.filter((t) => !(ALL_TARGET_IDS as readonly string[]).includes(t));
  if (unknown.length) {
    throw new PlugforgeError(
      'unknown_target',
      `Unknown target ${unknown.map((t) => `"${t}"`).join(', ')}; valid targets: ${ALL_TARGET_IDS.join(', ')} (the last three with mode=exe), or mattermost (${MATTERMOST_TARGETS.join(', ')}).`,
      { details: { valid: [...ALL_TARGET_IDS] } },
    );
  }
  if (!targetList.length) throw new PlugforgeError('unknown_target', `No target given; valid targets: ${ALL_TARGET_IDS.join(', ')}.`);
  const targets = ALL_TARGET_IDS.filter((t) => targetList.includes(t));
  const exeOnly = targets.filter((t) => TARGETS[t].goos !== 'linux');
  // Executables are the default where nothing else can be built (targets=mattermost).
  const mode = asked ?? (exeOnly.length ? 'exe' : 'plugin');
  if (mode === 'plugin' && exeOnly.length) {
    throw new PlugforgeError(
      'target_needs_exe',
      `${exeOnly.join(', ')} ${exeOnly.length > 1 ? 'are' : 'is'} for executables only: Go plugins load on linux alone. Build with mode=exe, or leave ${exeOnly.length > 1 ? 'them' : 'it'} out.`,
    );
  }
  if (cgo && (mode !== 'exe' || exeOnly.length)) {
    throw new PlugforgeError(
      'invalid_option',
      mode !== 'exe'
        ? 'Option "cgo" is for executables (mode=exe): Go plugins always build with cgo.'
        : `Option "cgo=true" builds linux executables only; ${exeOnly.join(', ')} build without cgo (pure Go), as Mattermost builds them.`,
    );
  }
  return { targets, mode };
}

/** A host release by name and version. */
export interface HostReleaseRef {
  name: string;
  version: string;
}

/** The most releases one build names (hosts=): its cells are releases × targets. */
export const MAX_MATRIX_RELEASES = 8;

/** `hosts=`: one release, or a matrix of up to MAX_MATRIX_RELEASES, each named once. */
function hostsOption(text: string): HostReleaseRef[] {
  const refs = text.split(',').map((ref) => {
    const [name = '', version = ''] = ref.split('@');
    return hostRelease(name, version, 'invalid_option');
  });
  if (refs.length > MAX_MATRIX_RELEASES) {
    throw new PlugforgeError(
      'invalid_option',
      `Option "hosts" names ${refs.length} host releases; one build takes at most ${MAX_MATRIX_RELEASES}: split them over several builds.`,
    );
  }
  const seen = new Set<string>();
  for (const r of refs) {
    const ref = `${r.name}@${r.version}`;
    if (seen.has(ref)) throw new PlugforgeError('invalid_option', `Option "hosts" names ${ref} twice; name each release once.`);
    seen.add(ref);
  }
  return refs;
}

/**
 * A host release's name and version checked, the version's leading "v" before a digit
 * dropped (v2.4.0 and 2.4.0 are one release). Refused: 400 with `code`.
 */
export function hostRelease(name: string, version: string, code = 'invalid_host_release'): HostReleaseRef {
  if (!HOST_NAME_RE.test(name)) {
    throw new PlugforgeError(
      code,
      `Host name "${name.slice(0, 80)}" is not one plugforge takes: 1-64 lower-case letters, digits, dots, dashes or underscores, starting with a letter or digit (such as gotify).`,
    );
  }
  const bare = /^v\d/.test(version) ? version.slice(1) : version;
  if (!HOST_VERSION_RE.test(bare)) {
    throw new PlugforgeError(
      code,
      `Host version "${version.slice(0, 80)}" is not one plugforge takes: a version such as 2.4.0 or v2.4.0 (starting with a digit, up to 64 letters, digits, dots, pluses, dashes or underscores).`,
    );
  }
  return { name, version: bare };
}

const ALLOWED_VALUES: Record<string, string> = {
  mode: ' (plugin or exe)',
  cgo: ' (true or false)',
  host: ' (gotify, flow or generic)',
  trimpath: ' (true or false)',
  strip: ' (true or false)',
  verify: ' (strict, warn or loaded)',
  reuse: ' (on or off)',
};

/** The default artifact name: the module path's last element, without a /vN suffix. */
export function nameFromModule(modulePath: string): string {
  const parts = modulePath.split('/').filter(Boolean);
  let last = parts.at(-1) ?? 'plugin';
  if (/^v\d+$/.test(last) && parts.length > 1) last = parts.at(-2) ?? last;
  const cleaned = last
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64);
  return cleaned || 'plugin';
}

/**
 * The options of a multipart submission: query parameters and form fields together. An
 * option given in both is refused (400 option_given_twice), never decided silently.
 */
export function mergeOptionSources(query: Record<string, unknown>, fields: Record<string, string>): Record<string, unknown> {
  const twice = Object.keys(fields).filter((k) => k in query);
  if (twice.length) {
    throw new PlugforgeError(
      'option_given_twice',
      `Option ${twice.map((k) => `"${k}"`).join(', ')} was given both in the query and as a form field; give each option once.`,
    );
  }
  return { ...query, ...fields };
}
