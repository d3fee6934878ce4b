import type { Readable } from 'node:stream';
import { readBody, readTar, type TarWriter } from '../archive/tar-streams.js';
import { z } from 'zod';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { TARGETS, type TargetId } from '../contract/targets.js';

/**
 * Mattermost-style plugin bundles: the plugin's `plugin.json` manifest and one server
 * executable per platform, as a .tar.gz whose single top-level directory is the plugin id
 * (what Mattermost's plugin template's `make dist` produces and its server installs).
 */

/** Where the manifest sits in the plugin's source. */
export const MANIFEST_PATH = 'plugin.json';
const MAX_MANIFEST_BYTES = 64 * 1024;
/** What a bundle carries over from the source besides the manifest, as the plugin template does. */
const CARRIED_DIRS = ['assets/', 'public/', 'webapp/dist/'];

/** Mattermost picks a server executable by the GOOS-GOARCH of the server it runs on. */
export function platformKey(target: TargetId): string {
  const t = TARGETS[target];
  return `${t.goos}-${t.goarch}`;
}

/** Semantic versions as Mattermost parses them (github.com/blang/semver's Parse: no "v", no leading zeros). */
const SEMVER_RE =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-(0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
const semver = (what: string) =>
  z.string().max(128).regex(SEMVER_RE, `must be a semantic version such as ${what} (no "v", no leading zeros)`);
const httpUrl = z
  .string()
  .max(2048)
  .regex(/^https?:\/\/[^\s/]+/, 'must be an http(s) URL');

/**
 * What Mattermost checks of a manifest (its model.Manifest.IsValid and, at install,
 * IsValidPluginId: docs/plugins.md, "Executable plugins"), and where the bundle carries
 * the webapp from.
 */
const manifestSchema = z.looseObject({
  // Mattermost's rule (letters, digits, - _ .; 3 to 190), starting with a letter or digit so
  // that it is a plain directory name in the bundle.
  id: z
    .string()
    .regex(
      /^[a-zA-Z0-9][a-zA-Z0-9_.-]{2,189}$/,
      'must be 3 to 190 letters, digits, "-", "_" or "." (e.g. com.example.hello), starting with a letter or digit',
    ),
  name: z
    .string({ error: 'must name the plugin (Mattermost refuses a manifest without one)' })
    .max(1024)
    .trim()
    .min(1, 'must name the plugin (Mattermost refuses a manifest without one)'),
  version: semver('1.2.0').optional(),
  min_server_version: semver('9.0.0').optional(),
  homepage_url: httpUrl.optional(),
  support_url: httpUrl.optional(),
  release_notes_url: httpUrl.optional(),
  server: z.looseObject({}).optional(),
  webapp: z
    .looseObject({
      bundle_path: z
        .string()
        .regex(
          /^webapp\/dist\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/,
          'must be a file under webapp/dist/ (what the bundle carries), such as webapp/dist/main.js',
        )
        .refine((p) => !p.split('/').includes('..'), 'must not climb out of webapp/dist/ with ".."')
        .optional(),
    })
    .optional(),
});

export type PluginManifest = z.infer<typeof manifestSchema>;

/** Parses plugin.json; a manifest that is not JSON or lacks a usable id is 422 manifest_invalid. */
export function parseManifest(text: string): PluginManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PlugforgeError(
      'manifest_invalid',
      `plugin.json is not valid JSON (${(err as Error).message}). Fix it and submit the build again.`,
      { status: 422 },
    );
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(the manifest)'} ${i.message}`).join('; ');
    throw new PlugforgeError('manifest_invalid', `plugin.json cannot make a bundle: ${problems}. Fix it and submit the build again.`, {
      status: 422,
    });
  }
  return parsed.data;
}

/**
 * The manifest as the bundle carries it: `server.executables` names the executable of each
 * platform built (a single `server.executable` is dropped: it would name one for all), every
 * other field as the author wrote it.
 */
export function bundleManifest(manifest: PluginManifest, executables: { target: TargetId; name: string }[]): Record<string, unknown> {
  const { executable: _single, ...server } = (manifest.server ?? {}) as Record<string, unknown>;
  return {
    ...manifest,
    server: { ...server, executables: Object.fromEntries(executables.map((e) => [platformKey(e.target), `server/dist/${e.name}`])) },
  };
}

/** The file name a bundle is offered under: `<id>-<version>.tar.gz`, as the plugin template names it. */
export function bundleFileName(manifest: PluginManifest): string {
  return `${manifest.id}${manifest.version ? `-${manifest.version}` : ''}.tar.gz`;
}

/**
 * Refuses an exe build whose manifest names a webapp bundle the upload lacks: plugforge does
 * not run npm, so the bundle would install a plugin whose webapp is missing (422
 * webapp_bundle_missing). Reads the clean source tar's headers until the file is found.
 */
export async function checkWebappBundle(source: Readable, manifest: PluginManifest): Promise<void> {
  const wanted = manifest.webapp?.bundle_path;
  if (wanted === undefined) return;
  let found = false;
  await readTar(source, async (header, body) => {
    body.resume();
    if (header.name !== wanted || header.type !== 'file') return;
    found = true;
    return 'stop';
  });
  if (!found) {
    throw new PlugforgeError(
      'webapp_bundle_missing',
      `plugin.json names the webapp bundle ${wanted}, which the upload does not have: plugforge builds the server side only. Build the webapp first (cd webapp && npm run build) and upload with ${wanted} in it, or remove webapp.bundle_path from plugin.json.`,
      { status: 422 },
    );
  }
}

/** Reads plugin.json from a clean source tar; undefined when it has none. Stops reading once found. */
export async function readManifest(source: Readable): Promise<string | undefined> {
  let found: string | undefined;
  await readTar(source, async (header, body) => {
    if (header.name !== MANIFEST_PATH || header.type !== 'file') return;
    if ((header.size ?? 0) > MAX_MANIFEST_BYTES) {
      throw new PlugforgeError(
        'manifest_invalid',
        `plugin.json is larger than ${MAX_MANIFEST_BYTES / 1024} KiB; a manifest is a few KiB of JSON.`,
        { status: 422 },
      );
    }
    found = (
      await readBody(
        body,
        MAX_MANIFEST_BYTES,
        () => new PlugforgeError('manifest_invalid', 'plugin.json is larger than it said.', { status: 422 }),
      )
    ).toString('utf8');
    return 'stop';
  });
  return found;
}

/** Adds to the archive, under `<dir>/`, what the bundle carries over from a clean source tar (assets/, public/, webapp/dist/). */
export async function packCarriedFiles(tarball: TarWriter, dir: string, source: Readable, mtime: Date): Promise<void> {
  await readTar(source, async (header, body) => {
    if (header.type !== 'file' || !CARRIED_DIRS.some((d) => header.name.startsWith(d))) return;
    await tarball.addStream({ name: `${dir}/${header.name}`, size: header.size ?? 0, mode: 0o644, mtime }, body);
  });
}
