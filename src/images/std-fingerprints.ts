import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { readProgram } from '../program-file.js';
import { readBody, readTar } from '../archive/tar-streams.js';
import type { ExitedContainer, ImageEngine } from '../runtime/image-engine.js';
import { isStdPackage, readPackageFingerprints, type PackageFingerprints } from '../verify/package-fingerprints.js';

/** Links the image's standard library into one plugin (scripts/std-fingerprints.sh). */
const STD_SCRIPT = readProgram(new URL('./scripts/std-fingerprints.sh', import.meta.url));
const STD_PLUGIN = '/var/tmp/plugforge-std/std.so';
/** Far above the ~22 MB the standard library links to; the file is ours, the cap keeps it so. */
const MAX_STD_PLUGIN_BYTES = 256 * 1024 * 1024;
/** A table is a fact of the image's bits: kept by image id, for every installation on this Redis. */
const CACHE_SECONDS = 30 * 24 * 3600;
/** The build settings that change how the standard library compiles (the rest of a build's environment does not). */
const STD_ENV = /^(GOOS|GOARCH|GOARM|GOARM64|GO386|GOAMD64|GOEXPERIMENT|CC|CGO_ENABLED)=/;

/** How the standard library is compiled for a build: its target settings, -trimpath, tags. */
export interface StdSettings {
  env: readonly string[];
  trimpath: boolean;
  tags: readonly string[];
}

/**
 * The standard library's package fingerprints of an image (by id), as a plugin built with
 * `settings` links them: from Redis when known, else linked in a short container of the
 * image from its precompiled standard library (a few seconds) and kept.
 */
export async function stdFingerprints(
  engine: ImageEngine,
  redis: Redis,
  image: { tag: string; id: string },
  settings: StdSettings,
  labels?: Record<string, string>,
): Promise<PackageFingerprints> {
  const env = settings.env.filter((e) => STD_ENV.test(e)).sort();
  const key = `plugforge:std-fingerprints:${createHash('sha256')
    .update(JSON.stringify([image.id, env, settings.trimpath, settings.tags]))
    .digest('hex')}`;
  const known = await redis.get(key);
  if (known) return JSON.parse(known) as PackageFingerprints;
  let table: PackageFingerprints | undefined;
  const res = await engine.runCommand(image.tag, ['sh', '-c', STD_SCRIPT, 'std', settings.trimpath ? '-trimpath' : '', settings.tags.join(',')], {
    env,
    writableRoot: true,
    memoryBytes: 2 * 1024 * 1024 * 1024,
    timeoutMs: 10 * 60_000,
    ...(labels ? { labels } : {}),
    afterExit: async (container, result) => {
      if (result.exitCode === 0) table = stdOnly(readPackageFingerprints(await readStdPlugin(engine, container)));
    },
  });
  if (!table || !Object.keys(table).length) {
    const said = `${res.stderr}\n${res.stdout}`.trim().split('\n').slice(-3).join(' | ');
    throw new Error(`linking the standard library of ${image.tag} failed (exit ${res.exitCode}): ${said}`);
  }
  await redis.set(key, JSON.stringify(table), 'EX', CACHE_SECONDS);
  return table;
}

/** The linked plugin's bytes, out of the engine's archive of it: one regular file, capped. */
async function readStdPlugin(engine: ImageEngine, container: ExitedContainer): Promise<Buffer> {
  let found: Buffer | undefined;
  await readTar(await engine.getArchive({ container, path: STD_PLUGIN }), async (header, body) => {
    if (header.type !== 'file') throw new Error(`${STD_PLUGIN} is not a regular file (${header.type ?? 'unknown'})`);
    found = await readBody(body, MAX_STD_PLUGIN_BYTES, () => new Error(`${STD_PLUGIN} is over ${MAX_STD_PLUGIN_BYTES} bytes`));
    return 'stop';
  });
  if (!found) throw new Error(`${STD_PLUGIN} was not written`);
  return found;
}

/** The standard library's packages of a fingerprint table (not the main package, not a plugin's own). */
export function stdOnly(fingerprints: PackageFingerprints): PackageFingerprints {
  return Object.fromEntries(Object.entries(fingerprints).filter(([pkg]) => pkg !== 'main' && !pkg.startsWith('plugin/') && isStdPackage(pkg)));
}

/** The host's standard packages whose fingerprints differ from the table's, sorted (packages the table lacks are not counted). */
export function stdDiffering(host: PackageFingerprints, table: PackageFingerprints): string[] {
  return Object.entries(stdOnly(host))
    .filter(([pkg, hash]) => table[pkg] !== undefined && table[pkg] !== hash)
    .map(([pkg]) => pkg)
    .sort();
}
