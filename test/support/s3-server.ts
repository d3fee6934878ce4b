import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, ListBucketsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type Docker from 'dockerode';
import { eventually, EventuallyTimeout } from './eventually.js';

/**
 * A real S3 server for the S3 blob store's tests: Ceph's radosgw on its SQLite backend, in
 * the image images/radosgw/ makes (scripts/lib/setup.sh, setup_s3_server), one container
 * per test file on a random loopback port, its data on a tmpfs, removed after.
 */
export const S3_SERVER_IMAGE = process.env.PLUGFORGE_TEST_S3_IMAGE ?? 'plugforge/radosgw:reef';
/** The keys of the image's S3 user (images/radosgw/Dockerfile, make-user.sh). */
export const S3_TEST_KEYS = { accessKeyId: 'PLUGFORGETESTKEY0000', secretAccessKey: 'plugforge-test-secret-key-0000000000000' };
const LABEL = 'dev.plugforge.test';

export interface S3Server {
  endpoint: string;
  client: S3Client;
  /** A new, empty bucket of its own. */
  createBucket(): Promise<string>;
  /** Every key in `bucket`, and the multipart uploads begun and never finished or aborted. */
  leftovers(bucket: string): Promise<{ keys: string[]; uploads: string[] }>;
  /** The environment a plugforge configuration needs for `s3://bucket/prefix` on this server. */
  env(bucket: string, prefix?: string): Record<string, string>;
  logs(): Promise<string>;
  stop(): Promise<void>;
}

export async function startS3Server(docker: Docker): Promise<S3Server> {
  await docker
    .getImage(S3_SERVER_IMAGE)
    .inspect()
    .catch(() => {
      throw new Error(
        `This test needs the S3 server image ${S3_SERVER_IMAGE} (Ceph radosgw, images/radosgw/), and it is missing. ` +
          `Build it with ./scripts/test (its "S3 server image" phase), or by hand: bash -c '. scripts/lib/setup.sh && setup_s3_server'`,
      );
    });
  const container = await docker.createContainer({
    Image: S3_SERVER_IMAGE,
    Labels: { [LABEL]: 's3-server' },
    ExposedPorts: { '7480/tcp': {} },
    HostConfig: {
      PortBindings: { '7480/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
      Tmpfs: { '/var/lib/ceph/radosgw': 'rw,size=512m' },
    },
  });
  const logs = async () => demux(await container.logs({ stdout: true, stderr: true, tail: 60 }));
  const stop = async () => {
    await container.remove({ force: true }).catch((err: { statusCode?: number }) => {
      if (err.statusCode !== 404) throw err;
    });
  };
  try {
    await container.start();
    const port = (await container.inspect()).NetworkSettings.Ports['7480/tcp']?.[0]?.HostPort;
    const endpoint = `http://127.0.0.1:${port}`;
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3_TEST_KEYS });
    await waitUntilServing(client, container, logs);
    return {
      endpoint,
      client,
      createBucket: () => createBucket(client),
      leftovers: (bucket) => leftovers(client, bucket),
      env: (bucket, prefix) => s3Env(endpoint, bucket, prefix),
      logs,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Up to 60 s for radosgw to answer the test user (made in the image: images/radosgw/make-user.sh). */
async function waitUntilServing(client: S3Client, container: Docker.Container, logs: () => Promise<string>): Promise<void> {
  let last: Error | undefined;
  const answers = async () => {
    try {
      await client.send(new ListBucketsCommand({}));
      return true;
    } catch (err) {
      last = err as Error;
      const state = (await container.inspect()).State;
      if (!state.Running) throw new Error(`the S3 server container exited (status ${state.ExitCode}):\n${await logs()}`, { cause: err });
      return false;
    }
  };
  try {
    await eventually(answers, { timeoutMs: 60_000, intervalMs: 250 });
  } catch (err) {
    if (!(err instanceof EventuallyTimeout)) throw err;
    throw new Error(`the S3 server did not answer within 60 s (${last?.message}):\n${await logs()}`, { cause: err });
  }
}

async function createBucket(client: S3Client): Promise<string> {
  const bucket = `pf-test-${randomBytes(5).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

async function leftovers(client: S3Client, bucket: string): Promise<{ keys: string[]; uploads: string[] }> {
  const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return { keys: (objects.Contents ?? []).map((o) => o.Key ?? ''), uploads: (uploads.Uploads ?? []).map((u) => u.Key ?? '') };
}

function s3Env(endpoint: string, bucket: string, prefix?: string): Record<string, string> {
  return {
    PLUGFORGE_BLOB_STORE: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
    PLUGFORGE_S3_ENDPOINT: endpoint,
    AWS_ACCESS_KEY_ID: S3_TEST_KEYS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3_TEST_KEYS.secretAccessKey,
  };
}

/** The text of Docker's multiplexed log frames (8-byte header: stream, 0, 0, 0, length). */
function demux(buf: Buffer): string {
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= buf.length;) {
    const length = buf.readUInt32BE(at + 4);
    parts.push(buf.subarray(at + 8, at + 8 + length));
    at += 8 + length;
  }
  return Buffer.concat(parts).toString('utf8');
}
