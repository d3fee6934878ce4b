import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/** The payload type of an in-toto statement in a DSSE envelope. */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

/** A DSSE envelope (https://github.com/secure-systems-lab/dsse, envelope.md): the payload base64, each signature over its PAE. */
export interface DsseEnvelope<T extends string = string> {
  payloadType: T;
  payload: string;
  signatures: { keyid: string; sig: string }[];
}

/** DSSE's pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body, lengths in bytes, in decimal. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

/** An envelope of `payload`, signed by `sign` (base64 DER ECDSA over the PAE) under `keyid`. */
export function signEnvelope<T extends string>(
  payloadType: T,
  payload: Buffer,
  keyid: string,
  sign: (data: Buffer) => string,
): DsseEnvelope<T> {
  return { payloadType, payload: payload.toString('base64'), signatures: [{ keyid, sig: sign(pae(payloadType, payload)) }] };
}

/** A public key as a PEM text or a KeyObject, with the id it is known by. */
/** The key id of a public key: the sha256 of its DER SubjectPublicKeyInfo, hex. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export interface VerifyingKey {
  keyid: string;
  key: string | KeyObject;
}

/** Whether `signature` (base64 DER ECDSA, SHA-256) is one of `key`'s over `data`. A malformed signature is false, not an error. */
export function verifySignature(key: VerifyingKey, data: Buffer, signature: string): boolean {
  try {
    const publicKey = typeof key.key === 'string' ? createPublicKey(key.key) : key.key;
    return verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, Buffer.from(signature.trim(), 'base64'));
  } catch {
    return false;
  }
}

/**
 * The key among `keys` whose signature the envelope carries, verified over the PAE of its
 * payload; undefined when none verifies. The keyid the envelope names is a hint only:
 * every signature is tried against every key.
 */
export function verifyEnvelope(envelope: DsseEnvelope, keys: VerifyingKey[]): VerifyingKey | undefined {
  const signed = pae(envelope.payloadType, Buffer.from(envelope.payload, 'base64'));
  for (const s of envelope.signatures ?? []) {
    const found = keys.find((k) => verifySignature(k, signed, s.sig));
    if (found) return found;
  }
  return undefined;
}
