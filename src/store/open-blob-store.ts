import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';
import { redactUrls } from '../redact-url.js';

const quiet = () => undefined;

/** How long start-up waits for the bucket to answer. */
const CHECK_TIMEOUT_MS = 15_000;

/** A store ready for use; init() makes its local directories again (idempotent). */
/** Where blobs are stored: the data directory, or an S3 bucket (src/store/s3-blob-store.ts). */
export type BlobStoreConfig =
  | { kind: 'fs' }
  | {
      kind: 's3';
      bucket: string;
      /** '' or ending in '/'. */
      prefix: string;
      /** A custom S3-compatible server; undefined: AWS. */
      endpoint?: string;
      region: string;
      /** http://host/bucket/key rather than http://bucket.host/key: on for a custom endpoint, whose host has no per-bucket names. */
      forcePathStyle: boolean;
      /** Undefined: the SDK's default chain (shared config files, instance or container roles). */
      credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
      tempDir: string;
    };

export type OpenedBlobStore = BlobStore & { init(): Promise<void> };

/**
 * The blob store the configuration names (PLUGFORGE_BLOB_STORE): the filesystem store in
 * `fsDir` (default <data dir>/blobs), or an S3 bucket's, which must answer now. Rejects with
 * a PlugforgeError naming the bucket and the endpoint when it does not: a service that
 * cannot store is not started.
 */
export async function openBlobStore(
  config: { blobStore: BlobStoreConfig; dataDir: string },
  fsDir = path.join(config.dataDir, 'blobs'),
): Promise<OpenedBlobStore> {
  const c = config.blobStore;
  if (c.kind === 'fs') {
    const store = new FsBlobStore(fsDir);
    await store.init();
    return store;
  }
  const client = createS3Client(c);
  const store = new S3BlobStore({
    client,
    bucket: c.bucket,
    prefix: c.prefix,
    tempDir: c.tempDir,
    endpointName: c.endpoint ? redactUrls(c.endpoint) : `AWS (${c.region})`,
  });
  await store.init();
  await store.check(AbortSignal.timeout(CHECK_TIMEOUT_MS));
  return store;
}

/** The SDK's client for an s3:// store's configuration. */
export function createS3Client(c: Extract<BlobStoreConfig, { kind: 's3' }>): S3Client {
  return new S3Client({
    region: c.region,
    ...(c.endpoint ? { endpoint: c.endpoint } : { followRegionRedirects: true }),
    forcePathStyle: c.forcePathStyle,
    ...(c.credentials ? { credentials: c.credentials } : {}),
    maxAttempts: 3,
    // Silent: each failed request reaches the caller as an error (a missing blob's 404 is no
    // fault), and the SDK's warning that a stream PUT is not tried again is answered by
    // S3BlobStore, which tries again itself.
    logger: { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet },
    // A connection that does not open is an error soon; no socket timeout beyond that, as a
    // download read at a slow client's pace may pause for long.
    requestHandler: { connectionTimeout: 5_000 },
  });
}
