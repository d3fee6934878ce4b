// Run once before the fleet's API replicas start (docker-compose.fleet.yml, service
// "init"): makes what the replicas must share and no replica may make on its own.
//
//   - the bucket of PLUGFORGE_BLOB_STORE (s3://bucket/prefix) at PLUGFORGE_S3_ENDPOINT, if
//     it is missing: plugforge itself never creates buckets (docs/deployment.md);
//   - the signing key at PLUGFORGE_SIGNING_KEY, if the file is missing: every replica signs
//     with the same key (a replica that generated its own would sign with another).
//
// Runs as root so that it can give the key to the user plugforge (uid 10001), who alone
// reads it. Idempotent: each start of the fleet runs it again and changes nothing.
import { generateKeyPairSync } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';

const PLUGFORGE_UID = 10001;

async function makeBucket() {
  const url = /^s3:\/\/([^/]+)/.exec(process.env.PLUGFORGE_BLOB_STORE ?? '');
  if (!url) throw new Error('PLUGFORGE_BLOB_STORE must be s3://bucket[/prefix]');
  const bucket = url[1];
  const client = new S3Client({
    endpoint: process.env.PLUGFORGE_S3_ENDPOINT,
    region: process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: true,
  });
  // The object store may still be starting: up to 60 s.
  for (let until = Date.now() + 60_000; ;) {
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
      console.log(`fleet-init: bucket ${bucket} is there`);
      return;
    } catch (err) {
      if (err?.$metadata?.httpStatusCode === 404) {
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
        console.log(`fleet-init: bucket ${bucket} made`);
        return;
      }
      if (Date.now() > until)
        throw new Error(`the object store at ${process.env.PLUGFORGE_S3_ENDPOINT} did not answer within 60 s: ${err.message}`, {
          cause: err,
        });
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function makeSigningKey() {
  const file = process.env.PLUGFORGE_SIGNING_KEY;
  if (!file) throw new Error('PLUGFORGE_SIGNING_KEY must name the key file the replicas share');
  if (existsSync(file)) {
    console.log(`fleet-init: signing key ${file} is there`);
    return;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  chownSync(file, PLUGFORGE_UID, PLUGFORGE_UID);
  console.log(`fleet-init: signing key ${file} made`);
}

try {
  makeSigningKey();
  await makeBucket();
} catch (err) {
  console.error(`fleet-init: ${err.message}`);
  process.exit(1);
}
