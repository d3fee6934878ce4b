import { createHash, createPublicKey, createSign, type KeyObject } from 'node:crypto';

/**
 * The installation's ECDSA P-256 key as OpenPGP (RFC 4880, with RFC 6637's ECDSA), for
 * what verifies OpenPGP signatures only: Mattermost checks a plugin bundle's detached
 * signature with golang.org/x/crypto/openpgp against public keys its administrator added
 * (docs/provenance.md, "Signed Mattermost bundles"). The same key as every other signature
 * of the installation, in OpenPGP's packets: a v4 public key with one user ID and its
 * self-certification, and v4 binary-document signatures over SHA-256. Pure functions of
 * the key, its creation time and the bytes: the same key always has the same fingerprint.
 */

const TAG_SIGNATURE = 2;
const TAG_PUBLIC_KEY = 6;
const TAG_USER_ID = 13;
const ALGO_ECDSA = 19;
const HASH_SHA256 = 8;
const SIG_BINARY = 0x00;
const SIG_POSITIVE_CERTIFICATION = 0x13;
/** NIST P-256, 1.2.840.10045.3.1.7, as the curve OID field holds it. */
const P256_OID = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);

const SUB_CREATION_TIME = 2;
const SUB_ISSUER = 16;
const SUB_KEY_FLAGS = 27;
const SUB_ISSUER_FINGERPRINT = 33;
/** Key flags: may certify other keys (0x01) and sign data (0x02). */
const FLAGS_CERTIFY_SIGN = 0x03;

/** An OpenPGP view of one ECDSA P-256 key, created at a fixed time. */
export interface OpenPgpKey {
  privateKey: KeyObject;
  /** Seconds since the epoch: part of the fingerprint, so it never changes for a key. */
  created: number;
  /** "plugforge (<installation>)" or similar: the user ID its public key carries. */
  userId: string;
}

/** The v4 public key packet's body: version, time, algorithm, curve, point. */
function publicKeyBody(key: OpenPgpKey): Buffer {
  const jwk = createPublicKey(key.privateKey).export({ format: 'jwk' });
  if (jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new Error('an OpenPGP key here is an ECDSA P-256 key');
  const point = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  return Buffer.concat([Buffer.from([4]), u32(key.created), Buffer.from([ALGO_ECDSA, P256_OID.length]), P256_OID, mpi(point)]);
}

/** The v4 fingerprint (SHA-1 over 0x99, the body's length and the body), hex upper-case as gpg prints it. */
export function openPgpFingerprint(key: OpenPgpKey): string {
  return fingerprintOf(publicKeyBody(key)).toString('hex').toUpperCase();
}

function fingerprintOf(body: Buffer): Buffer {
  return createHash('sha1').update(keyHashPrefix(body)).update(body).digest();
}

function keyHashPrefix(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x99]), u16(body.length)]);
}

/** The transferable public key (key, user ID, self-certification), ASCII-armored: what an administrator adds to Mattermost. */
export function armoredPublicKey(key: OpenPgpKey): string {
  const body = publicKeyBody(key);
  const userId = Buffer.from(key.userId, 'utf8');
  const certified = [keyHashPrefix(body), body, Buffer.from([0xb4]), u32(userId.length), userId];
  const signer = hashing();
  for (const part of certified) signer.update(part);
  const certification = signaturePacket(key, body, SIG_POSITIVE_CERTIFICATION, signer, [
    subpacket(SUB_KEY_FLAGS, Buffer.from([FLAGS_CERTIFY_SIGN])),
  ]);
  return armor('PUBLIC KEY BLOCK', Buffer.concat([packet(TAG_PUBLIC_KEY, body), packet(TAG_USER_ID, userId), certification]));
}

/** A detached binary-document signature (binary packet) of the bytes `chunks` yields, streamed: `gpg --verify <sig> <file>` reads it. */
export async function detachedSignature(key: OpenPgpKey, chunks: AsyncIterable<Buffer>, signedAt = new Date()): Promise<Buffer> {
  const signer = hashing();
  for await (const chunk of chunks) signer.update(chunk);
  return signaturePacket(key, publicKeyBody(key), SIG_BINARY, signer, [], Math.floor(signedAt.getTime() / 1000));
}

/** SHA-256 of what is signed, twice: the ECDSA signer's, and the digest whose first two octets the packet carries. */
interface Hashing {
  update(part: Buffer): void;
  finish(key: KeyObject): { rs: Buffer; left16: Buffer };
}

function hashing(): Hashing {
  const hash = createHash('sha256');
  const signer = createSign('sha256');
  return {
    update: (part) => {
      hash.update(part);
      signer.update(part);
    },
    finish: (key) => ({ rs: signer.sign({ key, dsaEncoding: 'ieee-p1363' }), left16: hash.digest().subarray(0, 2) }),
  };
}

/**
 * A v4 signature packet over `signed` (the data, then the signature's hashed part and its
 * trailer, RFC 4880 5.2.4), with the creation time and issuer fingerprint hashed and the
 * issuer key ID unhashed (golang.org/x/crypto/openpgp looks the key up by it).
 */
function signaturePacket(key: OpenPgpKey, body: Buffer, type: number, signed: Hashing, extra: Buffer[], at = key.created): Buffer {
  const fingerprint = fingerprintOf(body);
  const hashed = Buffer.concat([
    subpacket(SUB_CREATION_TIME, u32(at)),
    subpacket(SUB_ISSUER_FINGERPRINT, Buffer.concat([Buffer.from([4]), fingerprint])),
    ...extra,
  ]);
  const head = Buffer.concat([Buffer.from([4, type, ALGO_ECDSA, HASH_SHA256]), u16(hashed.length), hashed]);
  const trailer = Buffer.concat([Buffer.from([4, 0xff]), u32(head.length)]);
  signed.update(head);
  signed.update(trailer);
  const { rs, left16 } = signed.finish(key.privateKey);
  const unhashed = subpacket(SUB_ISSUER, fingerprint.subarray(12));
  return packet(
    TAG_SIGNATURE,
    Buffer.concat([head, u16(unhashed.length), unhashed, left16, mpi(rs.subarray(0, 32)), mpi(rs.subarray(32))]),
  );
}

/** A new-format packet: tag, length (one, two or five octets), body. */
function packet(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const length =
    n < 192
      ? Buffer.from([n])
      : n < 8384
        ? Buffer.from([((n - 192) >> 8) + 192, (n - 192) & 0xff])
        : Buffer.concat([Buffer.from([0xff]), u32(n)]);
  return Buffer.concat([Buffer.from([0xc0 | tag]), length, body]);
}

/** A signature subpacket: its length (type included; all ours are short), type, data. */
function subpacket(type: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([data.length + 1, type]), data]);
}

/** A multiprecision integer: its bit count, then its bytes without leading zeros. */
function mpi(value: Buffer): Buffer {
  let i = 0;
  while (i < value.length - 1 && value[i] === 0) i++;
  const bytes = value.subarray(i);
  const bits = (bytes.length - 1) * 8 + (32 - Math.clz32(bytes[0] ?? 0));
  return Buffer.concat([u16(bits), bytes]);
}

/** ASCII armor (RFC 4880 6.2): base64 in lines of 64, the CRC-24 checksum. */
export function armor(kind: 'PUBLIC KEY BLOCK' | 'SIGNATURE', data: Buffer): string {
  const lines = data.toString('base64').match(/.{1,64}/g) ?? [];
  const crc = u32(crc24(data)).subarray(1).toString('base64');
  return `-----BEGIN PGP ${kind}-----\n\n${lines.join('\n')}\n=${crc}\n-----END PGP ${kind}-----\n`;
}

function crc24(data: Buffer): number {
  let crc = 0xb704ce;
  for (const byte of data) {
    crc ^= byte << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
