import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { BlobStore, StoredBlob } from '../store/blob-store.js';

export interface ReadArtifact extends StoredBlob {
  /** The first bytes of the file, for the ELF check. */
  head: Buffer;
}

/**
 * Reads the tar Docker returns for the artifact path: it must hold exactly one regular
 * file, no bigger than maxBytes. The file streams into the store; anything else (a
 * link, a directory, a second entry, an oversize file) is refused and nothing is kept.
 */
export async function storeArtifact(archive: Readable, expectedName: string, store: BlobStore, maxBytes: number): Promise<ReadArtifact> {
  const extract = tar.extract();
  let result: ReadArtifact | undefined;
  let failure: PlugforgeError | undefined;

  extract.on('entry', (header, stream, next) => {
    const refuse = (err: PlugforgeError) => {
      failure ??= err;
      stream.resume();
      stream.on('end', next);
    };
    if (result || failure) return refuse(new PlugforgeError('artifact_invalid', `The build produced more than one file at ${expectedName}.`));
    if (header.type !== 'file') return refuse(new PlugforgeError('artifact_invalid', `${expectedName} is a ${header.type}, not a regular file.`));
    if (header.name !== expectedName) return refuse(new PlugforgeError('artifact_invalid', `Expected ${expectedName}, the build produced ${header.name}.`));
    if ((header.size ?? 0) > maxBytes) {
      return refuse(new PlugforgeError('artifact_too_large', `${expectedName} is ${header.size} bytes, over the ${maxBytes}-byte artifact limit.`));
    }
    let head = Buffer.alloc(0);
    const peek = new Transform({
      transform(chunk: Buffer, _enc, done) {
        if (head.length < 64) head = Buffer.concat([head, chunk.subarray(0, 64 - head.length)]);
        done(null, chunk);
      },
    });
    store
      .put(stream.pipe(peek), { maxBytes })
      .then((blob) => {
        result = { ...blob, head };
        next();
      })
      .catch((err: Error) => {
        failure ??= err instanceof PlugforgeError ? err : new PlugforgeError('artifact_store_failed', `Storing ${expectedName} failed: ${err.message}`, { status: 500, retryable: true });
        next();
      });
  });
  await pipeline(archive, extract);
  if (failure) throw failure;
  if (!result) throw new PlugforgeError('artifact_missing', `The build produced no ${expectedName}.`);
  return result;
}

/** The one regular file of a tar Docker returned (e.g. the probe binary), up to maxBytes, in memory. */
export async function readSingleFile(archive: Readable, maxBytes: number): Promise<Buffer> {
  const extract = tar.extract();
  const chunks: Buffer[] = [];
  let size = 0;
  let files = 0;
  extract.on('entry', (header, stream, next) => {
    if (header.type === 'file') files++;
    stream.on('data', (data) => {
      const c = data as Buffer;
      size += c.length;
      if (header.type === 'file' && size <= maxBytes) chunks.push(c);
    });
    stream.on('end', next);
  });
  await pipeline(archive, extract);
  if (files !== 1 || size > maxBytes) throw new PlugforgeError('verify_failed', 'The loading probe was not built as one file.', { status: 500 });
  return Buffer.concat(chunks);
}
