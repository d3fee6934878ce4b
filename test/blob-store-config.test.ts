import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

/** PLUGFORGE_BLOB_STORE and what an s3:// store reads with it (src/config.ts). */
describe('blob store configuration', () => {
  it('is the data directory by default', () => {
    expect(loadConfig({}).blobStore).toEqual({ kind: 'fs' });
    expect(loadConfig({ PLUGFORGE_BLOB_STORE: 'fs' }).blobStore).toEqual({ kind: 'fs' });
  });

  it('reads a bucket and prefix, a custom endpoint addressed path-style, the region and the keys', () => {
    const config = loadConfig({
      PLUGFORGE_BLOB_STORE: 's3://plugforge-blobs/prod/eu/',
      PLUGFORGE_S3_ENDPOINT: 'http://127.0.0.1:7480/',
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
    });
    expect(config.blobStore).toEqual({
      kind: 's3',
      bucket: 'plugforge-blobs',
      prefix: 'prod/eu/',
      endpoint: 'http://127.0.0.1:7480',
      region: 'eu-west-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' },
      tempDir: path.join(os.tmpdir(), 'plugforge-s3-temp'),
    });
  });

  it('on AWS: us-east-1, virtual-hosted addressing, and the SDK finds the credentials', () => {
    expect(loadConfig({ PLUGFORGE_BLOB_STORE: 's3://abc', PLUGFORGE_S3_TEMP_DIR: '/var/tmp/pf' }).blobStore).toEqual({
      kind: 's3',
      bucket: 'abc',
      prefix: '',
      region: 'us-east-1',
      forcePathStyle: false,
      tempDir: '/var/tmp/pf',
    });
  });

  it.each([
    [{ PLUGFORGE_BLOB_STORE: 's3://ab' }, 'PLUGFORGE_BLOB_STORE="s3://ab": must be fs or s3://bucket[/prefix]'],
    [{ PLUGFORGE_BLOB_STORE: 's3://Upper/x' }, 'PLUGFORGE_BLOB_STORE="s3://Upper/x": must be fs or s3://bucket[/prefix]'],
    [{ PLUGFORGE_BLOB_STORE: 's3://bucket//x' }, 'PLUGFORGE_BLOB_STORE="s3://bucket//x": must be fs or s3://bucket[/prefix]'],
    [{ PLUGFORGE_BLOB_STORE: 'minio://bucket' }, 'PLUGFORGE_BLOB_STORE="minio://bucket": must be fs or s3://bucket[/prefix]'],
    [
      { PLUGFORGE_BLOB_STORE: 's3://bucket', PLUGFORGE_S3_ENDPOINT: '127.0.0.1:7480' },
      'PLUGFORGE_S3_ENDPOINT="127.0.0.1:7480": must be an http:// or https:// URL',
    ],
    [{ PLUGFORGE_BLOB_STORE: 's3://bucket', PLUGFORGE_S3_TEMP_DIR: 'tmp' }, 'PLUGFORGE_S3_TEMP_DIR="tmp": must be an absolute path'],
    [{ PLUGFORGE_BLOB_STORE: 's3://bucket', AWS_REGION: 'EU WEST' }, 'AWS_REGION="EU WEST": must be a region name'],
    [
      { PLUGFORGE_BLOB_STORE: 's3://bucket', AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE' },
      'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: give both, or neither',
    ],
    [{ PLUGFORGE_S3_ENDPOINT: 'http://127.0.0.1:7480' }, 'PLUGFORGE_S3_ENDPOINT: set, but PLUGFORGE_BLOB_STORE is fs'],
  ])('stops start-up on %j, naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('never shows a secret in its messages', () => {
    expect(() =>
      loadConfig({ PLUGFORGE_BLOB_STORE: 's3://bucket', AWS_ACCESS_KEY_ID: 'with space', AWS_SECRET_ACCESS_KEY: 'hunter2-secret' }),
    ).toThrow(/^(?![\s\S]*hunter2)[\s\S]*AWS_ACCESS_KEY_ID/);
  });

  it('leaves the AWS variables alone when blobs are on the filesystem', () => {
    expect(loadConfig({ AWS_REGION: 'EU WEST', AWS_ACCESS_KEY_ID: 'only-one' }).blobStore).toEqual({ kind: 'fs' });
  });
});
