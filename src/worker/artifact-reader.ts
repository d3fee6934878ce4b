import { EXE_HEADER_BYTES } from '../verify/exe-header.js';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readTar } from '../archive/tar-streams.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { StoredBlob, WorkerBlobs } from '../store/blob-store.js';

export interface ReadArtifact extends StoredBlob {
  /** The first bytes of the file, for the ELF check. */
  head: Buffer;
}

/**
 * Reads the tar Docker returns for the artifact path: it must hold exactly one regular
 * file, no bigger than maxBytes. The file streams into the store; anything else (a
 * link, a directory, a second entry, an oversize file) is refused and nothing is kept.
 */
export async function storeArtifact(archive: Readable, expectedName: string, store: WorkerBlobs, maxBytes: number): Promise<ReadArtifact> {
  let result: ReadArtifact | undefined;
  await readTar(archive, async (header, body) => {
    if (result) throw new PlugforgeError('artifact_invalid', `The build produced more than one file at ${expectedName}.`);
    if (header.type !== 'file') throw new PlugforgeError('artifact_invalid', `${expectedName} is a ${header.type}, not a regular file.`);
    if (header.name !== expectedName)
      throw new PlugforgeError('artifact_invalid', `Expected ${expectedName}, the build produced ${header.name}.`);
    if ((header.size ?? 0) > maxBytes) {
      throw new PlugforgeError('artifact_too_large', `${expectedName} is ${header.size} bytes, over the ${maxBytes}-byte artifact limit.`);
    }
    let head = Buffer.alloc(0);
    const peek = new Transform({
      transform(chunk: Buffer, _enc, done) {
        if (head.length < EXE_HEADER_BYTES) head = Buffer.concat([head, chunk.subarray(0, EXE_HEADER_BYTES - head.length)]);
        done(null, chunk);
      },
    });
    // The store's put keeps nothing unless the whole body arrived.
    const stored = store.put(peek, { maxBytes });
    try {
      await pipeline(body, peek);
      result = { ...(await stored), head };
    } catch (err) {
      await stored.catch(() => undefined);
      if (err instanceof PlugforgeError) throw err;
      throw new PlugforgeError('artifact_store_failed', `Storing ${expectedName} failed: ${(err as Error).message}`, {
        status: 500,
        retryable: true,
      });
    }
  });
  if (!result) throw new PlugforgeError('artifact_missing', `The build produced no ${expectedName}.`);
  return result;
}
