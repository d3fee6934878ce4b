import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { StoredBlob } from './blob-store.js';

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
