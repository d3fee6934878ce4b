import { z } from 'zod';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { TARGET_IDS, type TargetId } from '../targets.js';

/** Artifact base names: what gotify-style file names allow, nothing a shell or a path could misread. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const optionsSchema = z
  .object({
    go: z.string().regex(/^(go)?\d+\.\d+(\.\d+)?$/, 'must be a Go release such as 1.22 or 1.22.12').optional(),
    targets: z.string().optional(),
    name: z.string().regex(NAME_RE, 'must be 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit').optional(),
    mode: z.enum(['plugin', 'exe']).default('plugin'),
    host: z.enum(['gotify', 'flow', 'generic']).default('generic'),
    hostGoMod: z.string().optional(),
  })
  .strict();

export interface BuildOptions {
  go?: string;
  targets: TargetId[];
  name?: string;
  mode: 'plugin' | 'exe';
  host: 'gotify' | 'flow' | 'generic';
}

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
      throw new PlugforgeError('unknown_option', `Unknown option ${issue.keys.map((k) => `"${k}"`).join(', ')}; the options are go, targets, name, mode, host, hostGoMod, hostBinary.`);
    }
    const field = String(issue?.path[0] ?? 'option');
    const allowed = field === 'mode' ? ' (plugin or exe)' : field === 'host' ? ' (gotify, flow or generic)' : '';
    throw new PlugforgeError('invalid_option', `Option "${field}": ${issue?.message ?? 'invalid'}${allowed}.`);
  }
  const o = parsed.data;
  if (o.hostGoMod !== undefined) {
    throw new PlugforgeError('host_matching_unavailable', 'Matching a host by its go.mod (hostGoMod) is not available on this server yet; give the host\'s Go version with "go" instead.', { status: 501 });
  }
  const targetList = (o.targets ?? defaultTargets.join(',')).split(',').map((t) => t.trim()).filter(Boolean);
  const unknown = targetList.filter((t) => !(TARGET_IDS as readonly string[]).includes(t));
  if (unknown.length) {
    throw new PlugforgeError('unknown_target', `Unknown target ${unknown.map((t) => `"${t}"`).join(', ')}; valid targets: ${TARGET_IDS.join(', ')}.`, { details: { valid: [...TARGET_IDS] } });
  }
  if (!targetList.length) throw new PlugforgeError('unknown_target', `No target given; valid targets: ${TARGET_IDS.join(', ')}.`);
  const targets = TARGET_IDS.filter((t) => targetList.includes(t));
  return {
    ...(o.go ? { go: o.go.replace(/^go/, '') } : {}),
    targets,
    ...(o.name ? { name: o.name } : {}),
    mode: o.mode,
    host: o.host,
  };
}

/** The default artifact name: the module path's last element, without a /vN suffix. */
export function nameFromModule(modulePath: string): string {
  const parts = modulePath.split('/').filter(Boolean);
  let last = parts.at(-1) ?? 'plugin';
  if (/^v\d+$/.test(last) && parts.length > 1) last = parts.at(-2) ?? last;
  const cleaned = last.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return cleaned || 'plugin';
}
