import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { blobCheck, blobHasher } from './blob-hash.js';
import type { StoredBlob, WorkerBlobs } from './blob-store.js';
import { redactUrls } from '../redact-url.js';

/** Tries of one transfer: a connection cut or a 5xx is tried again from the start. */
const ATTEMPTS = 3;

/**
 * A worker's blobs through the API (`/v1/worker/blobs/:sha256`, src/api/worker-routes.ts),
 * for a worker that shares no disk with it (docs/deployment.md). A read is checked against
 * its sha256 as it streams: a body that ends short or differs fails the stream, so nothing
 * built from it is kept. A write goes to a local temp file first (its sha256 and size are
 * then known), is sent whole and checked again by the API, tried again as a whole when the
 * connection or the API fails, and the temp file is removed in every case. Errors of the
 * transfer are retryable PlugforgeErrors: the job is tried again, on this or another worker.
 */
export class HttpBlobStore implements WorkerBlobs {
  constructor(
    private readonly api: { url: string; token: string },
    private readonly tempDir = path.join(os.tmpdir(), 'plugforge-worker'),
  ) {}

  async open(sha256: string): Promise<{ stream: Readable; size: number }> {
    const res = await this.send('GET', sha256);
    const size = Number(res.headers.get('content-length'));
    if (!res.body || !Number.isSafeInteger(size)) throw transferError(`GET of blob ${sha256} gave no body of known length`);
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
    const checked = body.pipe(sha256Check(sha256, size));
    body.on('error', (err) => checked.destroy(transferError(`the body of blob ${sha256} broke off: ${err.message}`)));
    return { stream: checked, size };
  }

  async put(input: Readable, options: { maxBytes?: number } = {}): Promise<StoredBlob> {
    await mkdir(this.tempDir, { recursive: true });
    const temp = path.join(this.tempDir, `put-${randomBytes(8).toString('hex')}`);
    try {
      const blob = await spool(input, temp, options.maxBytes);
      await this.send('PUT', blob.sha256, () => ({ body: createReadStream(temp), size: blob.size }));
      return blob;
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** One request, tried again from the start on a cut connection or a 5xx; a 4xx is final. */
  private async send(method: 'GET' | 'PUT', sha256: string, body?: () => { body: Readable; size: number }): Promise<Response> {
    const url = `${this.api.url}/v1/worker/blobs/${sha256}`;
    let last = '';
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const b = body?.();
      try {
        const res = await fetch(url, {
          method,
          headers: {
            Authorization: `Bearer ${this.api.token}`,
            ...(b ? { 'Content-Type': 'application/octet-stream', 'Content-Length': String(b.size) } : {}),
          },
          ...(b ? { body: Readable.toWeb(b.body) as ReadableStream, duplex: 'half' } : {}),
        } as RequestInit);
        if (res.ok) return res;
        const error = ((await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } }).error;
        last = `${res.status} ${error?.code ?? ''}: ${error?.message ?? res.statusText}`;
        if (res.status === 404 && method === 'GET')
          throw new PlugforgeError('blob_missing', `blob ${sha256} is not in the API's store (${last})`, { status: 500 });
        if (res.status < 500 && res.status !== 422) throw transferError(`${method} of blob ${sha256} refused: ${last}`, false);
      } catch (err) {
        if (err instanceof PlugforgeError) throw err;
        last = (err as Error).message;
      } finally {
        b?.body.destroy();
      }
      if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, 500 * attempt));
    }
    throw transferError(`${method} of blob ${sha256} to ${redactUrls(this.api.url)} failed ${ATTEMPTS} times: ${redactUrls(last)}`);
  }
}

/** Streams `input` into `file`, computing its sha256 and size; over `max` bytes fails (blob_too_large) as the stores do. */
async function spool(input: Readable, file: string, max?: number): Promise<StoredBlob> {
  const hasher = blobHasher(max);
  await pipeline(input, hasher.transform, createWriteStream(file, { flags: 'wx' }));
  const blob = hasher.blob();
  if ((await stat(file)).size !== blob.size) throw transferError('the local copy of a blob is not what was written');
  return blob;
}

/** Passes bytes on, failing the stream at its end when they are not `size` bytes of sha256 `expected`. */
function sha256Check(expected: string, size: number): Transform {
  return blobCheck({ sha256: expected, size }, (seen) =>
    transferError(`blob ${expected} arrived as ${seen.size} of ${size} bytes with sha256 ${seen.sha256}`),
  );
}

function transferError(message: string, retryable = true): PlugforgeError {
  return new PlugforgeError('blob_transfer_failed', retryable ? `${message}. The worker tries the job again.` : `${message}.`, {
    status: 503,
    retryable,
  });
}
