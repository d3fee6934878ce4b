import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

import { ArchiveError } from './archive-error.js';

/**
 * The checks on the compressed upload: it must start with the gzip magic (1f 8b) and stay
 * within `limit` bytes. Not a stream: it looks at each chunk on its way from the upload into
 * gunzip (see feedUpload). Every stream between the socket and gunzip holds one socket read
 * (64 KiB) of each upload, and the longer reads wait, the more outlive V8's young
 * generation and wait for a full collection: as a Transform, this cost 50 uploads at once
 * some 50 reads more in flight and 15 MB more peak RSS (SECURITY.md, bench/upload-memory.mjs).
 */
export class GzipIntake {
  bytes = 0;
  private readonly head: number[] = [];

  constructor(private readonly limit: number) {}

  /** The error that this chunk brings, if any: not gzip, or over the budget. */
  inspect(chunk: Buffer | string): ArchiveError | undefined {
    if (typeof chunk === 'string') chunk = Buffer.from(chunk);
    for (let i = 0; this.head.length < 2 && i < chunk.length; i++) this.head.push(chunk[i] as number);
    if ((this.head.length >= 1 && this.head[0] !== 0x1f) || (this.head.length >= 2 && this.head[1] !== 0x8b)) return notGzip(chunk);
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      return new ArchiveError(
        'archive_too_large',
        `The upload is larger than ${this.limit} bytes of gzip data, more than any archive within the limits needs. Remove build output, binaries and other large files from the source.`,
        { status: 413, details: { limit: this.limit } },
      );
    }
    return undefined;
  }

  /** The error of an upload that ended here, if any: empty, or shorter than the magic. */
  atEnd(): ArchiveError | undefined {
    if (this.bytes === 0) {
      return new ArchiveError(
        'archive_empty',
        'The upload is empty. Send the plugin source as a .tar.gz (tar -czf source.tar.gz -C <plugin dir> .).',
      );
    }
    return this.head.length < 2 ? notGzip(Buffer.from(this.head)) : undefined;
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
