import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

import { ArchiveError } from './archive-error.js';

/**
 * First stage of an upload: refuses anything that does not start with the gzip magic
 * (1f 8b) and cuts the stream off after `limit` bytes.
 */
export class GzipMagicGuard extends Transform {
  bytes = 0;
  private readonly head: number[] = [];

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer | string, _encoding: BufferEncoding, callback: TransformCallback): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    for (let i = 0; this.head.length < 2 && i < data.length; i++) this.head.push(data[i] as number);
    if ((this.head.length >= 1 && this.head[0] !== 0x1f) || (this.head.length >= 2 && this.head[1] !== 0x8b)) {
      callback(notGzip(data));
      return;
    }
    this.bytes += data.length;
    if (this.bytes > this.limit) {
      callback(
        new ArchiveError(
          'archive_too_large',
          `The upload is larger than ${this.limit} bytes of gzip data, more than any archive within the limits needs. Remove build output, binaries and other large files from the source.`,
          { status: 413, details: { limit: this.limit } },
        ),
      );
      return;
    }
    callback(null, data);
  }

  override _flush(callback: TransformCallback): void {
    if (this.bytes === 0) {
      callback(new ArchiveError('archive_empty', 'The upload is empty. Send the plugin source as a .tar.gz (tar -czf source.tar.gz -C <plugin dir> .).'));
      return;
    }
    callback(this.head.length < 2 ? notGzip(Buffer.from(this.head)) : null);
  }
}

function notGzip(start: Buffer): ArchiveError {
  const shown = JSON.stringify(start.subarray(0, 8).toString('latin1'));
  return new ArchiveError(
    'archive_not_gzip',
    `The upload is not gzip data (it starts with ${shown}). Send the plugin source as a .tar.gz (tar -czf source.tar.gz -C <plugin dir> .).`,
  );
}

/**
 * Counts what comes out of gunzip and fails once it passes `limit`, before the tar parser
 * sees it: headers can lie, the byte count cannot. The failure comes from `onExceeded`.
 */
export class ByteCeiling extends Transform {
  bytes = 0;

  constructor(
    private readonly limit: number,
    private readonly onExceeded: (bytes: number, limit: number) => Error,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      callback(this.onExceeded(this.bytes, this.limit));
      return;
    }
    callback(null, chunk);
  }
}

/** Passes bytes through unchanged, keeping their sha256 and count. */
export class HashingCounter extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  /** Hex sha256 of everything passed through; call once, after the stream finished. */
  digest(): string {
    return this.hash.digest('hex');
  }
}
