import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { readTar } from '../archive/tar-streams.js';
import { PROVENANCE_FILE } from '../provenance/slsa-provenance.js';
import type { TargetId } from '../contract/targets.js';
import type { BuildDocument, PlugforgeClient } from './api-client.js';
import { targetsOf, type DownloadResult } from './summary-table.js';
import { ClientError } from './client-errors.js';

/** Artifact names as the server makes them; anything else could name a path outside --out. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Downloads every succeeded artifact of `doc` into `outDir`, side by side, each first to a
 * hidden temporary file in `outDir` while its sha256 is computed. A file is renamed into
 * place only when its bytes match the build document (sha256, size) and the
 * X-Plugforge-Sha256 header; otherwise it is removed and the result says why. An
 * unreachable server rejects with a ClientError once every download has ended; files
 * already placed stay, no temporary file does. What `early` fetched while the build ran is
 * placed instead of fetched again when it is the artifact `doc` names.
 */
export async function downloadArtifacts(
  client: PlugforgeClient,
  doc: BuildDocument,
  outDir: string,
  options: { signal?: AbortSignal; onResult?: (result: DownloadResult) => void; early?: EarlyDownloads } = {},
): Promise<Partial<Record<TargetId, DownloadResult>>> {
  const wanted = targetsOf(doc).filter((t) => doc.targets[t]?.status === 'succeeded' && doc.targets[t]?.artifact);
  if (!wanted.length) return {};
  await mkdir(outDir, { recursive: true });
  const got: Partial<Record<TargetId, DownloadResult>> = {};
  const settled = await Promise.allSettled(
    wanted.map(async (target) => {
      const early = await options.early?.take(target);
      const artifact = doc.targets[target]!.artifact!;
      const same = early?.result.verified && early.result.sha256 === artifact.sha256 && early.result.size === artifact.size;
      if (early?.temp && !same) await rm(early.temp, { force: true });
      got[target] = await place(same ? early! : await fetchOne(client, doc, target, outDir, options.signal));
      options.onResult?.(got[target]!);
    }),
  );
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  // In the targets' order, whichever ended first.
  return Object.fromEntries(wanted.map((t) => [t, got[t]!]));
}

/**
 * Artifacts fetched while their build still runs, each as soon as its target has
 * succeeded, checked into a hidden temporary file in `outDir`: downloadArtifacts places
 * them once the build has ended, `discard` removes what it did not take.
 */
export class EarlyDownloads {
  private readonly fetches = new Map<TargetId, Promise<Fetched | undefined>>();

  constructor(
    private readonly client: PlugforgeClient,
    private readonly outDir: string,
    private readonly signal?: AbortSignal,
  ) {}

  /**
   * Starts fetching `target`'s artifact as build `id`'s document names it once that target
   * has succeeded (once per target; a failure leaves it to downloadArtifacts).
   */
  start(id: string, target: TargetId): void {
    if (this.fetches.has(target)) return;
    const fetching = this.client.build(id, this.signal).then(async (doc) => {
      if (doc.targets[target]?.status !== 'succeeded' || !doc.targets[target]?.artifact) return undefined;
      await mkdir(this.outDir, { recursive: true });
      return fetchOne(this.client, doc, target, this.outDir, this.signal);
    });
    this.fetches.set(
      target,
      fetching.catch(() => undefined),
    );
  }

  /** What was fetched for `target` (the caller places or removes it), if anything. */
  take(target: TargetId): Promise<Fetched | undefined> | undefined {
    const fetching = this.fetches.get(target);
    this.fetches.delete(target);
    return fetching;
  }

  /** Removes every temporary file not taken (a canceled or interrupted build). */
  async discard(): Promise<void> {
    const left = [...this.fetches.values()];
    this.fetches.clear();
    for (const fetched of await Promise.all(left)) if (fetched?.temp) await rm(fetched.temp, { force: true });
  }
}

/** A fetched artifact: checked, and when it verified, waiting in `temp` to be placed at `result.path`. */
interface Fetched {
  result: DownloadResult;
  temp?: string;
}

/** Renames a verified artifact into place; the result of one that did not verify as it is. */
async function place(fetched: Fetched): Promise<DownloadResult> {
  if (fetched.temp) await rename(fetched.temp, fetched.result.path);
  return fetched.result;
}

/** One target's artifact into a temporary file in `outDir`, checked (downloadArtifacts). */
async function fetchOne(
  client: PlugforgeClient,
  doc: BuildDocument,
  target: TargetId,
  outDir: string,
  signal?: AbortSignal,
): Promise<Fetched> {
  const artifact = doc.targets[target]!.artifact!;
  const finalPath = path.join(outDir, artifact.name);
  if (!SAFE_NAME.test(artifact.name))
    return {
      result: { target, path: finalPath, sha256: '', size: 0, verified: false, problem: `refused name ${JSON.stringify(artifact.name)}` },
    };
  // A download that breaks off starts again from the first byte (docs/cli.md, "Retries").
  const { header, temp, sha256, size } = await client.retrying(() => fetchToTemp(client, doc, target, outDir, signal), signal);
  const problems = [
    sha256 !== artifact.sha256 ? 'sha256 MISMATCH with the build document' : '',
    header !== sha256 ? (header ? 'sha256 MISMATCH with the header' : 'no X-Plugforge-Sha256 header') : '',
    size !== artifact.size ? `size ${size} != ${artifact.size}` : '',
  ].filter(Boolean);
  if (problems.length) {
    await rm(temp, { force: true });
    return { result: { target, path: finalPath, sha256, size, verified: false, problem: problems.join('; ') } };
  }
  return { result: { target, path: finalPath, sha256, size, verified: true }, temp };
}

/** The artifact's bytes into a new temporary file, hashed; a connection that breaks off mid-way is a ClientError connection_lost. */
async function fetchToTemp(client: PlugforgeClient, doc: BuildDocument, target: TargetId, outDir: string, signal?: AbortSignal) {
  const artifact = doc.targets[target]!.artifact!;
  const res = await client.artifact(doc.id, target, signal);
  const header = String(res.headers['x-plugforge-sha256'] ?? '');
  const temp = path.join(outDir, `.${artifact.name}.${randomBytes(4).toString('hex')}.partial`);
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  try {
    await pipeline(res, tap, createWriteStream(temp, { flags: 'wx', mode: doc.mode === 'exe' ? 0o755 : 0o644 }));
  } catch (err) {
    await rm(temp, { force: true });
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    if (signal?.aborted || (err as Error).name === 'AbortError' || !BROKEN_OFF.has(code)) throw err;
    throw new ClientError('connection_lost', `The download of ${artifact.name} broke off (${code}).`, { network: 'ECONNRESET' });
  }
  return { header, temp, sha256: hash.digest('hex'), size };
}

/** How a response that stops mid-way shows. */
const BROKEN_OFF = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'aborted', 'EPIPE']);

/** What `--bundle` got: where the bundle went, and whether every executable in it is the build's. */
export interface BundleResult {
  path: string;
  size: number;
  /** Executables in the bundle whose bytes match the build document's sha256 of that artifact. */
  executables: number;
  verified: boolean;
  /** `<bundle>.sig`, the bundle's OpenPGP signature, when the server gave one. */
  signature?: string;
  problem?: string;
}

/** Bundle file names as the server makes them (`<plugin id>-<version>.tar.gz`). */
const SAFE_BUNDLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,255}\.tar\.gz$/;

/**
 * Downloads the Mattermost-style bundle of an exe build into `outDir`, under the name the
 * server gives, through a hidden temporary file. While it is written, the bundle is read
 * too: each executable in its server/dist/ is hashed and compared with the build document.
 * The file is renamed into place only when every succeeded target's executable is there
 * and matches. A server refusal (no manifest, not an exe build) rejects with its ClientError.
 */
export async function downloadBundle(
  client: PlugforgeClient,
  doc: BuildDocument,
  outDir: string,
  options: { signal?: AbortSignal } = {},
): Promise<BundleResult> {
  const res = await client.bundle(doc.id, options.signal);
  const name = /filename="([^"]+)"/.exec(String(res.headers['content-disposition'] ?? ''))?.[1] ?? `${doc.name}-${doc.id}.tar.gz`;
  const finalPath = path.join(outDir, name);
  if (!SAFE_BUNDLE_NAME.test(name)) {
    res.resume();
    return { path: finalPath, size: 0, executables: 0, verified: false, problem: `refused name ${JSON.stringify(name)}` };
  }
  await mkdir(outDir, { recursive: true });
  const expected = new Map(
    targetsOf(doc).flatMap((t) =>
      doc.targets[t]?.status === 'succeeded' && doc.targets[t]?.artifact
        ? [[doc.targets[t]!.artifact!.name, doc.targets[t]!.artifact!.sha256] as const]
        : [],
    ),
  );
  const seen = new Map<string, string>();
  const temp = path.join(outDir, `.${name}.${randomBytes(4).toString('hex')}.partial`);
  let size = 0;
  // The bytes go to the file and, on the side, through gunzip into the tar reader; a bundle
  // that cannot be read stops being read (and fails the check below), not the download.
  const gunzip = createGunzip();
  const reading = readTar(gunzip, async (header, body) => {
    const m = /^[^/]+\/server\/dist\/([^/]+)$/.exec(header.name);
    if (!m || header.type !== 'file') return;
    const hash = createHash('sha256');
    for await (const chunk of body) hash.update(chunk as Buffer);
    seen.set(m[1]!, hash.digest('hex'));
  }).then(
    () => undefined,
    (err: Error) => err,
  );
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (gunzip.destroyed || gunzip.write(chunk)) return done(null, chunk);
      const go = () => {
        gunzip.off('drain', go).off('close', go);
        done(null, chunk);
      };
      gunzip.on('drain', go).on('close', go);
    },
    flush(done) {
      if (!gunzip.destroyed) gunzip.end();
      done();
    },
  });
  try {
    await pipeline(res, tap, createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  const unreadable = await reading;
  // The executables are the build's artifacts; server/dist/ also carries their signatures and the provenance.
  const executables = [...expected.keys()].filter((a) => seen.has(a)).length;
  const problems = unreadable ? [`the bundle cannot be read (${unreadable.message})`] : [];
  problems.push(
    ...[...expected].flatMap(([artifact, sha256]) => {
      const got = seen.get(artifact);
      if (got === undefined) return [`${artifact} missing from the bundle`];
      return got === sha256 ? [] : [`${artifact}: sha256 MISMATCH with the build document`];
    }),
  );
  if (problems.length) {
    await rm(temp, { force: true });
    return { path: finalPath, size, executables, verified: false, problem: problems.join('; ') };
  }
  await rename(temp, finalPath);
  return { path: finalPath, size, executables, verified: true, ...(await keepBundleSignature(client, doc.id, finalPath, options.signal)) };
}

/**
 * The bundle's OpenPGP signature beside it, `<bundle>.sig`, as Mattermost takes it
 * (docs/provenance.md, "Signed Mattermost bundles"), through a temporary name. A server
 * without the route (an older one) leaves the bundle unsigned and says so, not an error.
 */
async function keepBundleSignature(
  client: PlugforgeClient,
  id: string,
  bundlePath: string,
  signal?: AbortSignal,
): Promise<{ signature?: string; problem?: string }> {
  const temp = `${bundlePath}.${randomBytes(4).toString('hex')}.sig.partial`;
  try {
    await pipeline(await client.bundleSignature(id, signal), createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
    await rename(temp, `${bundlePath}.sig`);
    return { signature: `${bundlePath}.sig` };
  } catch (err) {
    await rm(temp, { force: true });
    if (signal?.aborted) throw err;
    return { problem: `no signature kept (${(err as Error).message})` };
  }
}

/** The line the summary prints for a bundle. */
export function bundleLine(bundle: BundleResult): string {
  if (!bundle.verified) return `bundle: NOT saved, ${bundle.problem}\n`;
  const signed = bundle.signature ? `; signed: ${path.basename(bundle.signature)}` : `; ${bundle.problem ?? 'not signed'}`;
  return `bundle: ${bundle.path} (${bundle.executables} executable(s), each matching the build document${signed})\n`;
}

/** What was kept beside the artifacts: the build's provenance, each artifact's signature and SBOM. */
export interface EvidenceResult {
  /** The files written, relative to the output directory. */
  files: string[];
  /** Why some are missing (an older server, a build without Go build info), when any is. */
  problem?: string;
}

/**
 * Keeps the build's evidence beside the artifacts downloaded (`verified` ones only):
 * provenance.intoto.jsonl (the DSSE envelope on one line), `<artifact>.sig` and
 * `<artifact>.cdx.json`, as artifacts.tar.gz holds them, so that `plugforge verify DIR`
 * and cosign check a download and an unpacked archive alike. Each file goes through a
 * temporary name. A server that refuses some (no such route, no build info) is reported
 * in `problem`, not thrown: the artifacts are already checked against their sha256.
 * `downloads` may still be under way: the evidence of every succeeded target is fetched
 * beside them, and only what belongs to a verified download is written once they end
 * (their failure is this call's).
 */
export async function downloadEvidence(
  client: PlugforgeClient,
  doc: BuildDocument,
  outDir: string,
  downloads: Partial<Record<TargetId, DownloadResult>> | Promise<Partial<Record<TargetId, DownloadResult>>>,
  options: { signal?: AbortSignal } = {},
): Promise<EvidenceResult> {
  const { signal } = options;
  const wanted: [name: string, fetch: () => Promise<string>, shape: (text: string) => string, target?: TargetId][] = targetsOf(doc)
    .filter((t) => doc.targets[t]?.status === 'succeeded' && doc.targets[t]?.artifact)
    .flatMap((target) => {
      const name = doc.targets[target]!.artifact!.name;
      return [
        [`${name}.sig`, () => client.evidence(doc.id, { kind: 'signature', target }, signal), (t: string) => `${t.trim()}\n`, target],
        [`${name}.cdx.json`, () => client.evidence(doc.id, { kind: 'sbom', target }, signal), (t: string) => t, target],
      ] as const;
    });
  if (!wanted.length) {
    await downloads;
    return { files: [] };
  }
  // One line: the .jsonl form cosign and in-toto tools read.
  wanted.push([
    PROVENANCE_FILE,
    () => client.evidence(doc.id, { kind: 'provenance' }, signal),
    (t) => `${JSON.stringify(JSON.parse(t))}\n`,
  ]);
  // Side by side, and beside the downloads; what was kept and what not is told in the order above.
  const fetched = wanted.map(([, fetch, shape]) => fetch().then(shape));
  // Heard at once: one that fails while the downloads still run must not count as unhandled (it would end the process).
  for (const f of fetched) f.catch(() => undefined);
  let placed: Partial<Record<TargetId, DownloadResult>>;
  try {
    placed = await downloads;
  } finally {
    // Whatever happens to the downloads, no fetch is left to reject unheard.
    await Promise.allSettled(fetched);
  }
  const kept = wanted
    .map(([, , , target], i) => ({ i, keep: target ? Boolean(placed[target]?.verified) : Object.values(placed).some((d) => d?.verified) }))
    .filter((w) => w.keep);
  const settled = await Promise.allSettled(kept.map(async ({ i }) => writeAtomically(path.join(outDir, wanted[i]![0]), await fetched[i]!)));
  const files: string[] = [];
  const problems: string[] = [];
  settled.forEach((r, k) => {
    const name = wanted[kept[k]!.i]![0];
    if (r.status === 'fulfilled') files.push(name);
    else if (isAbortError(r.reason)) throw r.reason;
    else problems.push(`${name}: ${(r.reason as Error).message}`);
  });
  return { files, ...(problems.length ? { problem: problems.join('; ') } : {}) };
}

/** The line the summary prints for the evidence kept. */
export function evidenceLine(evidence: EvidenceResult, outDir: string): string {
  const kept = evidence.files.length
    ? `kept ${evidence.files.length} file(s) of provenance, signatures and SBOMs; check them with: plugforge verify ${outDir}\n`
    : '';
  return kept + (evidence.problem ? `provenance: NOT all kept, ${evidence.problem}\n` : '');
}

async function writeAtomically(file: string, content: string): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.partial`);
  await writeFile(temp, content, { flag: 'wx', mode: 0o644 });
  await rename(temp, file);
}

function isAbortError(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}
