import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { BlobStore, StoredBlob } from './blob-store.js';

/**
 * A pass-through that computes what a store keeps a blob under, its sha256 and size, as the
 * bytes go by; past `max` bytes it fails the stream (blob_too_large), so nothing is kept.
 * `blob()` once the stream has ended.
 */
export function blobHasher(max = Number.POSITIVE_INFINITY): { transform: Transform; blob: () => StoredBlob } {
  const hash = createHash('sha256');
  let size = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > max) return done(new PlugforgeError('blob_too_large', `more than ${max} bytes`, { status: 413 }));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return { transform, blob: () => ({ sha256: hash.digest('hex'), size }) };
}

/**
 * A pass-through that fails the stream at its end (with `mismatch`'s error) when what went
 * by is not `size` bytes hashing to `sha256`: a reader of a blob never takes a short or
 * changed one for the real one.
 */
export function blobCheck(expected: StoredBlob, mismatch: (seen: StoredBlob) => Error): Transform {
  const hash = createHash('sha256');
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const seen = { sha256: hash.digest('hex'), size };
      done(seen.size === expected.size && seen.sha256 === expected.sha256 ? null : mismatch(seen));
    },
  });
}

/**
 * A store's `put` by way of one of its temp files: `input` hashed into it, then adopted
 * under its sha256; on any failure (a stream error, over `maxBytes`, `check` throwing
 * before the adopt) the temp file goes and nothing is kept or removed.
 */
export async function putThroughTemp(
  store: Pick<BlobStore, 'tempPath' | 'adopt' | 'discard'>,
  input: Readable,
  maxBytes?: number,
  check?: (blob: StoredBlob) => void,
): Promise<StoredBlob> {
  const temp = store.tempPath('put');
  const hasher = blobHasher(maxBytes);
  try {
    await pipeline(input, hasher.transform, createWriteStream(temp, { flags: 'wx' }));
    const blob = hasher.blob();
    check?.(blob);
    await store.adopt(temp, blob);
    return blob;
  } catch (err) {
    await store.discard(temp);
    throw err;
  }
}
