import { createPublicKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { keyIdOf, type VerifyingKey } from '../provenance/dsse.js';
import { parseArgsOr, UsageError } from '../usage-error.js';
import { EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf } from './client-options.js';
import { VERIFY_USAGE } from './client-usage.js';
import { checkEvidence, type EvidenceReport } from './evidence-check.js';

/**
 * `plugforge verify DIR|FILE [--key FILE]`: checks downloaded artifacts against their
 * provenance and signatures (src/client/evidence-check.ts) with the server's public keys
 * (GET /v1/keys, every key it has signed with) or, offline, a key file. Says which source
 * and toolchain made them. Exit 0 only when every check holds, 1 when any fails.
 */
export async function verifyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: { ...CONNECTION_OPTIONS, key: { type: 'string' }, json: { type: 'boolean', default: false } },
    },
    VERIFY_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${VERIFY_USAGE}\n`);
    return EXIT.ok;
  }
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length
        ? `one folder or file expected, got ${positionals.length}`
        : 'the folder of the downloaded artifacts (or one artifact) is needed',
      VERIFY_USAGE,
    );
  const given = positionals[0]!;
  const client = values.key === undefined ? clientFrom(values, VERIFY_USAGE) : undefined;
  return exitCodeOf(async () => {
    const isDir = (await stat(given).catch(() => undefined))?.isDirectory();
    if (isDir === undefined) throw new UsageError(`${given}: no such file or folder`, VERIFY_USAGE);
    const keys =
      values.key !== undefined
        ? [await keyFromFile(values.key)]
        : (await client!.keys()).keys.map((k) => ({ keyid: k.keyid, key: k.publicKey }));
    const target = isDir ? { dir: given } : { dir: path.dirname(given), file: given };
    const report = await checkEvidence(target, keys);
    process.stdout.write(
      values.json
        ? `${JSON.stringify(report, null, 2)}\n`
        : reportText(report, values.key ? `key file ${values.key}` : "the server's keys"),
    );
    return report.ok ? EXIT.ok : EXIT.failed;
  }, values.json);
}

/** A PEM public key (or a private key, whose public half is used) from a file, with its key id. */
async function keyFromFile(file: string): Promise<VerifyingKey> {
  const text = await readFile(file, 'utf8').catch((err: Error) => {
    throw new UsageError(`--key ${file}: cannot be read (${err.message})`, VERIFY_USAGE);
  });
  try {
    const key = createPublicKey(text);
    return { keyid: keyIdOf(key), key };
  } catch (err) {
    throw new UsageError(
      `--key ${file}: not a PEM public key (${(err as Error).message}); save the publicKey of GET /v1/keys`,
      VERIFY_USAGE,
    );
  }
}

/** The report as lines: the provenance, one line per artifact, what made them, and the verdict. */
function reportText(report: EvidenceReport, keysFrom: string): string {
  const p = report.provenance;
  const lines = [
    p.ok
      ? `${path.basename(p.file)}: signature OK (key ${p.keyid?.slice(0, 12)}…, from ${keysFrom}), SLSA provenance v1`
      : `${path.basename(p.file)}: FAILED: ${p.problems.join('; ')}`,
  ];
  for (const a of report.artifacts) {
    lines.push(
      a.ok ? `OK      ${path.basename(a.file)}  ${a.held.join(', ')}` : `FAILED  ${path.basename(a.file)}  ${a.problems.join('; ')}`,
    );
  }
  if (report.absent.length) lines.push(`(not in this folder, not checked: ${report.absent.join(', ')})`);
  const made = madeBy(report);
  if (made) lines.push(made);
  const failed = report.artifacts.filter((a) => !a.ok).length;
  lines.push(
    report.ok
      ? `verified: ${report.artifacts.length} artifact(s)`
      : `NOT verified: ${failed ? `${failed} of ${report.artifacts.length} artifact(s) failed` : 'the provenance failed'}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Which build, source and toolchain the (verified) provenance says made the artifacts. */
function madeBy(report: EvidenceReport): string | undefined {
  const s = report.provenance.statement;
  if (!s) return undefined;
  const { buildDefinition: def, runDetails: run } = s.predicate;
  const source = def.resolvedDependencies.find((d) => d.name === 'source');
  const images = def.resolvedDependencies.filter((d) => d.name?.startsWith('builder/'));
  const go = [...new Set(images.map((i) => String(i.annotations?.go ?? '?')))].join(', ');
  const modules = def.resolvedDependencies.filter((d) => d.uri?.startsWith('pkg:golang/')).length;
  return [
    `made by ${run.builder.id}, build ${run.metadata.invocationId}${run.metadata.finishedOn ? ` (finished ${run.metadata.finishedOn})` : ''}`,
    `  from source sha256 ${source?.digest?.sha256 ?? '?'}${source?.annotations?.module ? ` (module ${String(source.annotations.module)})` : ''}`,
    `  with Go ${go} in ${images.map((i) => i.uri).join(', ')}; ${modules} module(s) linked`,
  ].join('\n');
}
