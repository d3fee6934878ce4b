import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSign,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { linkSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { Logger } from '../log.js';
import { keyIdOf } from './dsse.js';
import { detachedSignature, type OpenPgpKey } from './openpgp.js';

/** The only signing algorithm: ECDSA on P-256 over SHA-256, the signature DER-encoded (what cosign verifies). */
export const SIGNING_ALGORITHM = 'ecdsa-p256-sha256';

/** A public key the installation signs or signed with, as GET /v1/keys lists it. */
export interface PublicKeyRecord {
  /** sha256 of the DER SubjectPublicKeyInfo, hex. */
  keyid: string;
  algorithm: typeof SIGNING_ALGORITHM;
  /** PEM SubjectPublicKeyInfo ("BEGIN PUBLIC KEY"), as `cosign verify-blob --key` reads it. */
  publicKey: string;
  /** When this installation first used it. */
  createdAt: string;
}

/**
 * The installation's signing key and every public key it has signed with. Files, under
 * `<data dir>/keys/`:
 *   signing-key.pem         the generated private key (0600), when PLUGFORGE_SIGNING_KEY is unset
 *   public/<keyid>.json     one PublicKeyRecord per key ever used, never removed
 * Several API processes share the data directory: every file is written to a temporary
 * name and hard-linked into place, which fails when another process got there first; the
 * loser reads the winner's file. So two processes starting at once sign with one key.
 * Opening is synchronous: it runs once, at start-up, and a key that cannot be had stops it.
 */
export class SigningKeys {
  private constructor(
    private readonly privateKey: KeyObject,
    readonly current: PublicKeyRecord,
    private readonly dir: string,
  ) {}

  private memo?: { redis: Redis; prefix: string; ttlSeconds: number };

  static open(config: { dataDir: string; signingKeyFile?: string }, log: Logger): SigningKeys {
    const dir = path.join(config.dataDir, 'keys');
    mkdirSync(path.join(dir, 'public'), { recursive: true, mode: 0o700 });
    const file = config.signingKeyFile ?? path.join(dir, 'signing-key.pem');
    const generated = config.signingKeyFile === undefined && generateOnce(file);
    const privateKey = createPrivateKey(readFileSync(file));
    const publicKey = createPublicKey(privateKey);
    const keyid = keyIdOf(publicKey);
    const record: PublicKeyRecord = {
      keyid,
      algorithm: SIGNING_ALGORITHM,
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      createdAt: new Date().toISOString(),
    };
    writeOnce(path.join(dir, 'public', `${keyid}.json`), `${JSON.stringify(record, null, 2)}\n`);
    const current = readRecord(path.join(dir, 'public', `${keyid}.json`)) ?? record;
    const where = generated ? `generated now at ${file}` : `from ${file}`;
    log.info({ keyid, file, generated }, `signing key ${keyid} ${where}; its public key is served at GET /v1/keys`);
    return new SigningKeys(privateKey, current, dir);
  }

  /**
   * The same key as OpenPGP (src/provenance/openpgp.ts), for Mattermost's bundle signatures:
   * created when this installation first used it, so its fingerprint never changes.
   */
  openPgp(): OpenPgpKey {
    return {
      privateKey: this.privateKey,
      created: Math.floor(Date.parse(this.current.createdAt) / 1000),
      userId: `plugforge signing key ${this.current.keyid.slice(0, 16)}`,
    };
  }

  /**
   * A detached OpenPGP signature of the bytes `chunks` yields (streamed), made `signedAt`,
   * and the first one made of these bytes under the current key once one was (rememberIn):
   * the same signature at every download of the same bundle.
   */
  async openPgpSignOnce(chunks: AsyncIterable<Buffer>, signedAt: Date): Promise<Buffer> {
    const hash = createHash('sha256');
    const hashed = (async function* () {
      for await (const chunk of chunks) {
        hash.update(chunk);
        yield chunk;
      }
    })();
    const signature = await detachedSignature(this.openPgp(), hashed, signedAt);
    return Buffer.from(await this.remembered(`openpgp-${hash.digest('hex')}`, signature.toString('base64')), 'base64');
  }

  /** The DER ECDSA signature of `data` (SHA-256), base64: what `cosign verify-blob --signature` reads. */
  sign(data: Buffer | string): string {
    return sign('sha256', typeof data === 'string' ? Buffer.from(data) : data, { key: this.privateKey, dsaEncoding: 'der' }).toString(
      'base64',
    );
  }

  /**
   * Keeps every signature made by `signOnce` in Redis (for `ttlSeconds`, 0: for good), so
   * that the same bytes get the same signature at every request and from every API
   * process: a build's files and archives are the same bytes at every download.
   */
  rememberIn(redis: Redis, prefix: string, ttlSeconds: number): this {
    this.memo = { redis, prefix, ttlSeconds };
    return this;
  }

  /** `sign`, but the first signature of these bytes under the current key once one was made (rememberIn). */
  async signOnce(data: Buffer): Promise<string> {
    return this.remembered(createHash('sha256').update(data).digest('hex'), this.sign(data));
  }

  /**
   * `signOnce` of a blob's bytes as they stream by, never all held at once (an artifact may
   * be hundreds of MiB, docs/decisions.md "Provenance is made when asked"). `onChunk` sees
   * each chunk too. Rejects when the bytes are not `expected`'s size and sha256: a stored
   * blob that changed is never signed.
   */
  async signStreamOnce(stream: Readable, expected: { sha256: string; size: number }, onChunk?: (chunk: Buffer) => void): Promise<string> {
    const signer = createSign('sha256');
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      signer.update(chunk);
      hash.update(chunk);
      size += chunk.length;
      onChunk?.(chunk);
    }
    const sha256 = hash.digest('hex');
    if (sha256 !== expected.sha256 || size !== expected.size) {
      throw new PlugforgeError(
        'blob_corrupt',
        `stored blob ${expected.sha256} is ${size} bytes hashing to ${sha256}, not ${expected.size} bytes of its own sha256: not signed`,
        { status: 500, retryable: true },
      );
    }
    return this.remembered(sha256, signer.sign({ key: this.privateKey, dsaEncoding: 'der' }).toString('base64'));
  }

  /** The signature kept for the bytes of `sha256` (or another name of them) under the current key, `signature` once it is the first (rememberIn). */
  private async remembered(sha256: string, signature: string): Promise<string> {
    if (!this.memo) return signature;
    const { redis, prefix, ttlSeconds } = this.memo;
    const key = `${prefix}:signature:${this.current.keyid}:${sha256}`;
    const first = ttlSeconds ? await redis.set(key, signature, 'EX', ttlSeconds, 'NX') : await redis.set(key, signature, 'NX');
    return first === 'OK' ? signature : ((await redis.get(key)) ?? signature);
  }

  /** Every key this installation has signed with, the current one first, then newest first. */
  list(): (PublicKeyRecord & { current: boolean })[] {
    const publicDir = path.join(this.dir, 'public');
    const records = readdirSync(publicDir)
      .filter((f) => /^[0-9a-f]{64}\.json$/.test(f))
      .flatMap((f) => readRecord(path.join(publicDir, f)) ?? []);
    return records
      .map((r) => ({ ...r, current: r.keyid === this.current.keyid }))
      .sort((a, b) => Number(b.current) - Number(a.current) || b.createdAt.localeCompare(a.createdAt));
  }
}

/** Makes the private key at `file` unless one is there; true when this process's key is the one that stayed. */
function generateOnce(file: string): boolean {
  try {
    readFileSync(file);
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return writeOnce(file, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
}

/** Writes `file` whole or not at all, unless it exists: false when another process's file is there. */
function writeOnce(file: string, content: string, mode = 0o644): boolean {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temp, content, { mode, flag: 'wx' });
  try {
    linkSync(temp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    unlinkSync(temp);
  }
}

function readRecord(file: string): PublicKeyRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as PublicKeyRecord;
    return typeof r.keyid === 'string' && typeof r.publicKey === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}
