import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { blobCheck, putThroughTemp } from './blob-hash.js';
import type { BlobStore, StoredBlob } from './blob-store.js';

const SHA256_RE = /^[0-9a-f]{64}$/;
/**
 * Tries of one PUT. One PUT per blob, not a multipart upload: S3 takes up to 5 GiB in one,
 * far above plugforge's upload and artifact limits, and radosgw 18.2 on dbstore reads
 * multipart objects back with their parts out of order (docs/decisions.md, "Blobs on S3").
 */
const PUT_ATTEMPTS = 3;
/** S3's Last-Modified header counts whole seconds: a blob's write may lie up to this after it. */
const LAST_MODIFIED_SLACK_MS = 1000;

export interface S3BlobStoreOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix: '' or ending in '/'. */
  prefix: string;
  /** Local directory of temp files (tempPath, and put's copy while it is hashed). */
  tempDir: string;
  /** The server, for the start-up check's message to the operator (the endpoint URL without user info, or "AWS"); never in a message a client reads. */
  endpointName: string;
}

/**
 * BlobStore on an S3 bucket: <prefix>sha256/ab/abcdef…, one object per blob, written once
 * under its final key by one PUT, which S3 makes visible whole or not at all. Bytes are
 * first written to a local temp file while they are hashed, then sent: a stream that fails
 * or runs over its limit never reaches the bucket, and nothing needs renaming there
 * (docs/decisions.md, "Blobs on S3"). Storing the same content again sends it again, so its
 * Last-Modified is renewed, as the filesystem store's rename renews mtime. Reads are checked
 * against the sha256 as they stream. Safe for several processes: a key is only ever written
 * with the bytes its name hashes. A server that does not answer, or answers 5xx (after the
 * SDK's own tries), is a retryable 503 `blob_store_unreachable`; other S3 errors reach the
 * caller as the SDK gives them.
 */
export class S3BlobStore implements BlobStore {
  constructor(private readonly options: S3BlobStoreOptions) {}

  async init(): Promise<void> {
    await mkdir(this.options.tempDir, { recursive: true });
  }

  /** Resolves when the bucket answers to these credentials; rejects naming bucket and endpoint. */
  async check(signal?: AbortSignal): Promise<void> {
    try {
      await this.options.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }), signal ? { abortSignal: signal } : {});
    } catch (err) {
      const status = statusOf(err);
      const why = status === 404 ? 'no such bucket' : status === 403 ? 'access denied to these credentials' : describeError(err);
      throw new PlugforgeError(
        'blob_store_unreachable',
        `the blob store's bucket "${this.options.bucket}" at ${this.options.endpointName} cannot be used (${why}): check PLUGFORGE_BLOB_STORE, PLUGFORGE_S3_ENDPOINT and the AWS credentials`,
        { status: 503, retryable: status !== 404 && status !== 403, cause: err },
      );
    }
  }

  tempPath(hint: string): string {
    return path.join(this.options.tempDir, `${hint.replace(/[^a-z0-9-]/gi, '')}-${randomBytes(8).toString('hex')}`);
  }

  private key(sha256: string): string {
    if (!SHA256_RE.test(sha256)) throw new PlugforgeError('bad_blob_id', `"${sha256}" is not a sha256`, { status: 500 });
    return `${this.options.prefix}sha256/${sha256.slice(0, 2)}/${sha256}`;
  }

  /**
   * Sends the temp file under its sha256's key in one PUT, then removes it (kept when every
   * try fails: the retention sweep takes it). Not a multipart upload: see PUT_ATTEMPTS.
   */
  async adopt(tempPath: string, blob: StoredBlob): Promise<void> {
    const key = this.key(blob.sha256);
    for (let attempt = 1; ; attempt++) {
      try {
        // A fresh stream each time: the SDK cannot send a stream again that it has read.
        const body = createReadStream(tempPath);
        await this.options.client.send(
          new PutObjectCommand({
            Bucket: this.options.bucket,
            Key: key,
            Body: body,
            ContentLength: blob.size,
            ContentType: 'application/octet-stream',
          }),
        );
        break;
      } catch (err) {
        const status = statusOf(err);
        if (attempt >= PUT_ATTEMPTS || (status !== undefined && status < 500 && status !== 429)) throw unreachable(err);
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
    await rm(tempPath, { force: true });
  }

  async put(input: Readable, options: { maxBytes?: number } = {}): Promise<StoredBlob> {
    await mkdir(this.options.tempDir, { recursive: true });
    return putThroughTemp(this, input, options.maxBytes);
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.head(sha256)) !== undefined;
  }

  async open(sha256: string): Promise<{ stream: Readable; size: number }> {
    try {
      const res = await this.options.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.key(sha256) }));
      const size = res.ContentLength ?? 0;
      const checked = readCheck(sha256, size);
      // Either side's end ends the other: a reader that stops early frees the connection.
      pipeline(res.Body as Readable, checked).catch(() => undefined);
      return { stream: checked, size };
    } catch (err) {
      // Named without bucket or endpoint: the message can reach a client or a build document.
      if (statusOf(err) === 404)
        throw new PlugforgeError('blob_missing', `stored blob ${sha256} is missing from the blob store`, { status: 500, cause: err });
      throw unreachable(err);
    }
  }

  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
  }

  async *list(): AsyncGenerator<StoredBlob & { writtenAt: number }> {
    const prefix = `${this.options.prefix}sha256/`;
    let token: string | undefined;
    do {
      const page = await this.options.client
        .send(new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }))
        .catch((err: unknown) => {
          throw unreachable(err);
        });
      for (const object of page.Contents ?? []) {
        const name = object.Key?.slice(object.Key.lastIndexOf('/') + 1) ?? '';
        if (!SHA256_RE.test(name) || object.Key !== this.key(name)) continue;
        yield { sha256: name, size: object.Size ?? 0, writtenAt: object.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async *listTemps(): AsyncGenerator<{ path: string; writtenAt: number }> {
    const root = this.options.tempDir;
    for (const name of await readdir(root).catch(() => [] as string[])) {
      const st = await stat(path.join(root, name)).catch(() => undefined);
      if (st?.isFile()) yield { path: path.join(root, name), writtenAt: st.mtimeMs };
    }
  }

  /**
   * HEAD, then DELETE when Last-Modified is older than `writtenBefore` (by more than its
   * one-second rounding). S3 has no delete conditional on time: a store of the same content
   * that completes between the HEAD and the DELETE is deleted with it (docs/decisions.md).
   */
  async remove(sha256: string, writtenBefore: number): Promise<number> {
    const head = await this.head(sha256);
    if (!head || head.writtenAt + LAST_MODIFIED_SLACK_MS > writtenBefore) return 0;
    await this.options.client
      .send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.key(sha256) }))
      .catch((err: unknown) => {
        throw unreachable(err);
      });
    return head.size;
  }

  /** Size and Last-Modified of a stored blob; undefined when there is none. */
  private async head(sha256: string): Promise<{ size: number; writtenAt: number } | undefined> {
    try {
      const res = await this.options.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.key(sha256) }));
      return { size: res.ContentLength ?? 0, writtenAt: res.LastModified?.getTime() ?? 0 };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw unreachable(err);
    }
  }
}

/**
 * A pass-through that fails at the end when what passed is not `size` bytes hashing to
 * `sha256`: a server's fault (or a changed object) never reaches a build or a download whole.
 */
function readCheck(sha256: string, size: number): Transform {
  return blobCheck(
    { sha256, size },
    (seen) =>
      new PlugforgeError(
        'blob_corrupt',
        `stored blob ${sha256} read from the blob store is ${seen.size} bytes hashing to ${seen.sha256}, not ${size} bytes of its own sha256`,
        { status: 500, retryable: true },
      ),
  );
}

/**
 * A server that did not answer, or answered 5xx, as a retryable 503 the API passes on to
 * its client as it is (the SDK's connection errors would otherwise look like any other
 * ECONNREFUSED); any other S3 error as it is. The message names no address: clients read it.
 */
function unreachable(err: unknown): unknown {
  const status = statusOf(err);
  if (status !== undefined && status < 500) return err;
  const how = status === undefined ? 'does not answer' : `answers ${status}`;
  return new PlugforgeError('blob_store_unreachable', `The store of sources and artifacts ${how}; try again shortly.`, {
    status: 503,
    retryable: true,
    cause: err,
  });
}

/** The HTTP status of an S3 error, when the server answered. */
function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function describeError(err: unknown): string {
  const e = err as Error & { code?: string };
  return (
    [e.name, e.code, e.message].filter((part, i, all) => part && part !== 'UnknownError' && all.indexOf(part) === i).join(': ') ||
    String(err)
  );
}
