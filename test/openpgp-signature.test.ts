import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { armoredPublicKey, detachedSignature, openPgpFingerprint, type OpenPgpKey } from '../src/provenance/openpgp.js';
import { openGpg, type Gpg } from './support/gpg.js';

/**
 * The installation's key as OpenPGP, checked by an independent implementation: Debian's
 * GnuPG imports the public key and verifies a detached signature of a file, and refuses it
 * once one byte of the file changes (docs/provenance.md, "Signed Mattermost bundles").
 */
let gpg: Gpg;
const key: OpenPgpKey = {
  privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  created: 1_790_000_000,
  userId: 'plugforge test installation',
};

beforeAll(async () => {
  gpg = await openGpg();
});

afterAll(async () => {
  await gpg?.close();
});

describe('the installation key as OpenPGP', () => {
  it('gpg imports its public key under the fingerprint plugforge states, and verifies a detached signature; one changed byte fails it', async () => {
    const keyFile = path.join(gpg.home, 'key.asc');
    await writeFile(keyFile, armoredPublicKey(key));
    const imported = await gpg.run('--import', keyFile);
    expect(imported.code, imported.out).toBe(0);
    expect(imported.out).toContain(`IMPORT_OK 1 ${openPgpFingerprint(key)}`);

    const data = Buffer.concat([Buffer.from('a bundle, '), Buffer.alloc(200_000, 7)]);
    const file = path.join(gpg.home, 'bundle.tar.gz');
    await writeFile(file, data);
    const sig = await detachedSignature(
      key,
      (async function* () {
        yield data.subarray(0, 1000);
        yield data.subarray(1000);
      })(),
    );
    await writeFile(`${file}.sig`, sig);
    const good = await gpg.run('--verify', `${file}.sig`, file);
    expect(good.code, good.out).toBe(0);
    expect(good.out).toContain(`VALIDSIG ${openPgpFingerprint(key)}`);

    const changed = Buffer.from(data);
    changed.writeUInt8(changed.readUInt8(500) ^ 1, 500);
    await writeFile(file, changed);
    const bad = await gpg.run('--verify', `${file}.sig`, file);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain('BADSIG');
  });
});
