import { execFile } from 'node:child_process';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BuildState } from '../src/builds/build-document.js';
import { EvidenceCache } from '../src/provenance/build-evidence.js';
import { SigningKeys } from '../src/provenance/signing-keys.js';
import type { BlobStore } from '../src/store/blob-store.js';
import { FsBlobStore } from '../src/store/fs-blob-store.js';
import { readGoBuildInfo } from '../src/verify/go-buildinfo.js';
import { requireDocker, requireImages } from './support/env.js';
import { sampleRecord } from './support/fixtures.js';

/**
 * A build's evidence (src/provenance/build-evidence.ts) on a real Go executable (the go
 * command of a builder image, as an artifact): made once per build and key whatever asks,
 * naming the builder from configuration, reading the artifact as a stream whose bytes are
 * checked against its sha256, its build info the same as when the whole file is read.
 */
const execFileP = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const log = pino({ level: 'silent' });

let binary: Buffer;
let keys: SigningKeys;

/** A store that counts the streams it opens. */
function counting(store: BlobStore): BlobStore & { opened: number } {
  const counted = Object.create(store) as BlobStore & { opened: number };
  counted.opened = 0;
  counted.open = async (sha: string) => {
    counted.opened++;
    return store.open(sha);
  };
  return counted;
}

async function storeWith(bytes: Buffer, under = sha256(bytes)): Promise<FsBlobStore> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-evidence-'));
  const store = new FsBlobStore(dir);
  await store.init();
  const temp = store.tempPath('t');
  await writeFile(temp, bytes);
  await store.adopt(temp, { sha256: under, size: bytes.length });
  return store;
}

function stateOf(bytes: Buffer, id = 'evidence1'): BuildState {
  const record = sampleRecord({ id, targetIds: ['linux-amd64'] });
  const artifact = { name: 'go.so', sha256: sha256(bytes), size: bytes.length };
  return {
    record,
    targets: { 'linux-amd64': { status: 'succeeded', artifact, image: 'plugforge/build:1.22.12-linux-amd64' } },
    status: 'succeeded',
    finishedAt: '2026-12-07T00:00:00.000Z',
  } as unknown as BuildState;
}

beforeAll(async () => {
  const docker = await requireDocker();
  const go = await requireImages(docker);
  const image = `plugforge/build:${go}-linux-amd64`;
  const { stdout } = await execFileP(
    'docker',
    ['run', '--rm', '--entrypoint', 'sh', image, '-c', 'cat "$(readlink -f "$(command -v go)")"'],
    { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 },
  );
  binary = stdout;
  keys = SigningKeys.open({ dataDir: await mkdtemp(path.join(os.tmpdir(), 'plugforge-keys-')) }, log);
}, 120_000);

describe('EvidenceCache', () => {
  it("makes a build's evidence once, however many ask at once or later, and names the builder by the signing key", async () => {
    const store = counting(await storeWith(binary));
    const cache = new EvidenceCache(store, keys);
    const state = stateOf(binary);
    const all = await Promise.all(Array.from({ length: 10 }, () => cache.of(state)));
    const opened = store.opened;
    await cache.of(state);
    expect(store.opened).toBe(opened);
    expect(new Set(all.map((e) => e.envelope.signatures[0]!.sig)).size).toBe(1);
    const statement = JSON.parse(Buffer.from(all[0]!.envelope.payload, 'base64').toString('utf8'));
    expect(statement.predicate.runDetails.builder.id).toBe(`urn:plugforge:builder:${keys.current.keyid}`);
    expect(statement.predicate.runDetails.byproducts[0].uri).toBe(
      `urn:plugforge:builder:${keys.current.keyid}/v1/builds/evidence1#targets.linux-amd64.verify`,
    );
  });

  it('names PLUGFORGE_PUBLIC_URL as the builder when it is set', async () => {
    const cache = new EvidenceCache(await storeWith(binary), keys, 'https://builds.example.org');
    const { envelope } = await cache.of(stateOf(binary, 'evidence2'));
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
    expect(statement.predicate.runDetails.builder.id).toBe('https://builds.example.org');
  });

  it("signs the artifact's bytes as they stream, and reads the same build info as from the whole file", async () => {
    const { artifacts } = await new EvidenceCache(await storeWith(binary), keys).of(stateOf(binary, 'evidence3'));
    const a = artifacts[0]!;
    expect(
      verify('sha256', binary, { key: createPublicKey(keys.current.publicKey), dsaEncoding: 'der' }, Buffer.from(a.signature, 'base64')),
    ).toBe(true);
    expect(a.buildInfo).toEqual(readGoBuildInfo(binary));
    expect(a.buildInfo?.goVersion).toMatch(/^1\.22\./);
    expect(a.sbom).toBeDefined();
  });

  it('signs nothing of a stored artifact whose bytes are not its sha256', async () => {
    const changed = Buffer.from(binary);
    changed.writeUInt8(changed.readUInt8(changed.length - 1) ^ 1, changed.length - 1);
    const store = await storeWith(changed, sha256(binary));
    await expect(new EvidenceCache(store, keys).of(stateOf(binary, 'evidence4'))).rejects.toMatchObject({ code: 'blob_corrupt' });
  });

  it("holds no whole artifact: a 64 MiB artifact streamed as one reused 1 MiB chunk leaves the process's buffers as they were", async () => {
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const size = 64 * chunk.length;
    const digest = createHash('sha256');
    for (let i = 0; i < 64; i++) digest.update(chunk);
    const artifactSha = digest.digest('hex');
    const store = {
      open: async () => ({
        stream: Readable.from(
          (function* () {
            for (let i = 0; i < 64; i++) yield chunk;
          })(),
        ),
        size,
      }),
    } as unknown as BlobStore;
    const state = { ...stateOf(binary, 'evidence5') } as BuildState;
    state.targets['linux-amd64']!.artifact = { name: 'zeros.so', sha256: artifactSha, size };
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 1);
    const { artifacts } = await new EvidenceCache(store, keys).of(state);
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    clearInterval(sampler);
    expect(artifacts[0]!.buildInfo).toBeUndefined();
    expect(peak - before).toBeLessThan(16 * 1024 * 1024);
  });
});
