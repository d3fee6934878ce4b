import { mkdtemp, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsBlobStore } from '../src/store/fs-blob-store.js';
import { blobStoreContract } from './support/blob-store-contract.js';

/** The filesystem blob store against the BlobStore contract (the S3 store runs the same: test/s3-blob-store.test.ts). */
blobStoreContract('FsBlobStore', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-fs-store-'));
  const store = new FsBlobStore(dir);
  await store.init();
  return {
    store,
    everything: async () =>
      (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name)),
  };
});
