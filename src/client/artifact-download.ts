import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TargetId } from '../targets.js';
import type { BuildDocument, PlugforgeClient } from './api-client.js';
import { targetsOf, type DownloadResult } from './summary-table.js';

/** Artifact names as the server makes them; anything else could name a path outside --out. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Downloads every succeeded artifact of `doc` into `outDir`, one at a time, each first to a
 * hidden temporary file in `outDir` while its sha256 is computed. A file is renamed into
 * place only when its bytes match the build document (sha256, size) and the
 * X-Plugforge-Sha256 header; otherwise it is removed and the result says why. An
 * unreachable server rejects with a ClientError; files already placed stay.
 */
export async function downloadArtifacts(
  client: PlugforgeClient,
  doc: BuildDocument,
  outDir: string,
  options: { signal?: AbortSignal; onResult?: (result: DownloadResult) => void } = {},
): Promise<Partial<Record<TargetId, DownloadResult>>> {
  const results: Partial<Record<TargetId, DownloadResult>> = {};
  const wanted = targetsOf(doc).filter((t) => doc.targets[t]?.status === 'succeeded' && doc.targets[t]?.artifact);
  if (!wanted.length) return results;
  await mkdir(outDir, { recursive: true });
  for (const target of wanted) {
    const artifact = doc.targets[target]!.artifact!;
    const finalPath = path.join(outDir, artifact.name);
    if (!SAFE_NAME.test(artifact.name)) {
      results[target] = { target, path: finalPath, sha256: '', size: 0, verified: false, problem: `refused name ${JSON.stringify(artifact.name)}` };
      options.onResult?.(results[target]!);
      continue;
    }
    const res = await client.artifact(doc.id, target, options.signal);
    const header = String(res.headers['x-plugforge-sha256'] ?? '');
    const temp = path.join(outDir, `.${artifact.name}.${randomBytes(4).toString('hex')}.partial`);
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(res, tap, createWriteStream(temp, { flags: 'wx', mode: doc.mode === 'exe' ? 0o755 : 0o644 }));
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    const sha256 = hash.digest('hex');
    const problems = [
      sha256 !== artifact.sha256 ? 'sha256 MISMATCH with the build document' : '',
      header !== sha256 ? (header ? 'sha256 MISMATCH with the header' : 'no X-Plugforge-Sha256 header') : '',
      size !== artifact.size ? `size ${size} != ${artifact.size}` : '',
    ].filter(Boolean);
    if (problems.length) {
      await rm(temp, { force: true });
      results[target] = { target, path: finalPath, sha256, size, verified: false, problem: problems.join('; ') };
    } else {
      await rename(temp, finalPath);
      results[target] = { target, path: finalPath, sha256, size, verified: true };
    }
    options.onResult?.(results[target]!);
  }
  return results;
}
