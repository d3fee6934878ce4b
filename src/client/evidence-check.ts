import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { IN_TOTO_PAYLOAD_TYPE, verifyEnvelope, verifySignature, type DsseEnvelope, type VerifyingKey } from '../provenance/dsse.js';
import { PROVENANCE_FILE, SLSA_PROVENANCE_V1, STATEMENT_TYPE, type ProvenanceStatement } from '../provenance/slsa-provenance.js';

/**
 * What `plugforge verify` checks in a folder of downloaded artifacts (or one artifact and
 * the files beside it): the provenance's DSSE signature, each artifact's sha256 against
 * the provenance's subjects, its `.sig` over its bytes, and its SBOM's hash when there is
 * one. Every check is made with the keys given (the server's, or a key file), nothing else.
 */
export interface ArtifactCheck {
  file: string;
  sha256: string;
  ok: boolean;
  /** What held, in words ("in the provenance", "signature by key …", "SBOM matches"). */
  held: string[];
  /** What did not, and why. */
  problems: string[];
}

export interface ProvenanceCheck {
  file: string;
  ok: boolean;
  problems: string[];
  /** The key whose signature the envelope carries. */
  keyid?: string;
  statement?: ProvenanceStatement;
}

export interface EvidenceReport {
  ok: boolean;
  provenance: ProvenanceCheck;
  artifacts: ArtifactCheck[];
  /** Subjects of the provenance not found in the folder (a folder may hold some targets only). */
  absent: string[];
}

/** Checks `target` (a folder, or one artifact whose evidence lies beside it) with `keys`. */
export async function checkEvidence(target: { dir: string; file?: string }, keys: VerifyingKey[]): Promise<EvidenceReport> {
  const provenance = await checkProvenance(path.join(target.dir, PROVENANCE_FILE), keys);
  const subjects = provenance.statement?.subject ?? [];
  const present = target.file ? [] : await readdir(target.dir);
  const names = target.file
    ? [path.basename(target.file)]
    : [
        ...new Set([
          ...subjects.map((s) => s.name).filter((n) => present.includes(n)),
          ...present
            .filter((f) => f.endsWith('.sig'))
            .map((f) => f.slice(0, -4))
            .filter((n) => present.includes(n)),
        ]),
      ];
  const artifacts: ArtifactCheck[] = [];
  for (const name of names) artifacts.push(await checkArtifact(path.join(target.dir, name), provenance, keys));
  if (!artifacts.length)
    provenance.problems.push(`no artifact named in ${PROVENANCE_FILE} and no artifact with a .sig beside it in ${target.dir}`);
  provenance.ok = provenance.problems.length === 0;
  const absent = target.file ? [] : subjects.map((s) => s.name).filter((n) => !present.includes(n));
  return { ok: provenance.ok && artifacts.every((a) => a.ok), provenance, artifacts, absent };
}

/** The envelope's signature, its payload type, and that its payload is a SLSA v1 provenance statement. */
async function checkProvenance(file: string, keys: VerifyingKey[]): Promise<ProvenanceCheck> {
  const check: ProvenanceCheck = { file, ok: false, problems: [] };
  let envelope: DsseEnvelope;
  try {
    const line = (await readFile(file, 'utf8')).split('\n').find((l) => l.trim() !== '') ?? '';
    envelope = JSON.parse(line) as DsseEnvelope;
  } catch (err) {
    check.problems.push(
      `${path.basename(file)} cannot be read as a DSSE envelope (${(err as Error).message}); download it with the artifacts (plugforge download ID, or artifacts.tar.gz)`,
    );
    return check;
  }
  const signer = verifyEnvelope(envelope, keys);
  if (!signer)
    check.problems.push(`the provenance's signature does not verify with ${keysText(keys)}: it was changed, or another key signed it`);
  else check.keyid = signer.keyid;
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE)
    check.problems.push(`the envelope's payloadType is ${JSON.stringify(envelope.payloadType)}, not ${IN_TOTO_PAYLOAD_TYPE}`);
  try {
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as ProvenanceStatement;
    if (statement._type !== STATEMENT_TYPE || statement.predicateType !== SLSA_PROVENANCE_V1 || !Array.isArray(statement.subject)) {
      check.problems.push(
        `the payload is not an in-toto Statement v1 of SLSA provenance v1 (_type ${JSON.stringify(statement._type)}, predicateType ${JSON.stringify(statement.predicateType)})`,
      );
    } else if (signer) {
      // Only a statement whose signature holds is believed.
      check.statement = statement;
    }
  } catch (err) {
    check.problems.push(`the payload is not JSON (${(err as Error).message})`);
  }
  return check;
}

/** One artifact: its sha256 among the provenance's subjects, its signature, its SBOM's hash. */
async function checkArtifact(file: string, provenance: ProvenanceCheck, keys: VerifyingKey[]): Promise<ArtifactCheck> {
  const name = path.basename(file);
  const bytes = await readFile(file);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const check: ArtifactCheck = { file, sha256, ok: false, held: [], problems: [] };
  const subjects = provenance.statement?.subject ?? [];
  const byName = subjects.find((s) => s.name === name);
  if (!provenance.statement) check.problems.push('no provenance to check its sha256 against (see above)');
  else if (byName?.digest.sha256 === sha256) check.held.push('sha256 as in the provenance');
  else if (byName)
    check.problems.push(
      `sha256 ${sha256.slice(0, 12)}… is not the provenance's ${byName.digest.sha256.slice(0, 12)}…: the file was changed`,
    );
  else check.problems.push(`not in the provenance (its subjects: ${subjects.map((s) => s.name).join(', ')})`);

  const signature = await readFile(`${file}.sig`, 'utf8').catch(() => undefined);
  const signer = signature === undefined ? undefined : keys.find((k) => verifySignature(k, bytes, signature));
  if (signature === undefined) check.problems.push(`no ${name}.sig beside it`);
  else if (!signer) check.problems.push(`${name}.sig does not verify with ${keysText(keys)}`);
  else check.held.push(`signature by key ${signer.keyid.slice(0, 12)}…`);

  const sbom = await readFile(`${file}.cdx.json`, 'utf8').catch(() => undefined);
  if (sbom !== undefined) {
    if (sbomHashes(sbom).includes(sha256)) check.held.push('SBOM of these bytes');
    else check.problems.push(`${name}.cdx.json describes other bytes (its SHA-256 is not the file's)`);
  }
  check.ok = check.problems.length === 0;
  return check;
}

/** The SHA-256 hashes a CycloneDX document gives its subject (metadata.component); none when it is not such a document. */
function sbomHashes(text: string): string[] {
  try {
    const bom = JSON.parse(text) as { metadata?: { component?: { hashes?: { alg: string; content: string }[] } } };
    return (bom.metadata?.component?.hashes ?? []).filter((h) => h.alg === 'SHA-256').map((h) => h.content);
  } catch {
    return [];
  }
}

function keysText(keys: VerifyingKey[]): string {
  return keys.length === 1
    ? `key ${keys[0]!.keyid.slice(0, 12)}…`
    : `any of the ${keys.length} keys (${keys.map((k) => `${k.keyid.slice(0, 12)}…`).join(', ')})`;
}
