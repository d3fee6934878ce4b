import { setMaxListeners } from 'node:events';
import { createReadStream } from 'node:fs';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_ARCHIVE_LIMITS } from '../archive/archive-limits.js';
import { TERMINAL, type BuildStatus } from '../contract/build-vocabulary.js';
import { parseArgsOr, UsageError } from '../usage-error.js';
import type { TargetId } from '../contract/targets.js';
import type { BuildDocument, PlugforgeClient, UploadBody } from './api-client.js';
import {
  bundleLine,
  downloadArtifacts,
  downloadBundle,
  downloadEvidence,
  EarlyDownloads,
  evidenceLine,
  type BundleResult,
} from './artifact-download.js';
import { ClientError, EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf, isAbort } from './client-options.js';
import { BUILD_USAGE } from './client-usage.js';
import { multipartBody } from './multipart-body.js';
import { listSourceFiles, packSource, type SourceListing } from './pack-directory.js';
import { IGNORE_FILE } from './ignore-rules.js';
import { failureNotes, formatBytes, summaryTable, targetsOf, timingsTable, type DownloadResult } from './summary-table.js';
import { githubAnnotations, junitDocument, junitReport, junitSuite, logTail, markdownSummary } from './ci-reports.js';
import { followMatrix, matrixTable, releaseDocuments } from './matrix-build.js';
import { createUploadProgress } from './upload-progress.js';

interface CiReports {
  junit?: string;
  summary?: string;
  document?: string;
  annotations?: 'github';
  /** The plugin's directory, as given: annotation paths are relative to the repository through it. */
  pluginDir: string;
}

interface BuildArgs {
  dir: string;
  out: string;
  query: Record<string, string | undefined>;
  hostGoMod?: string;
  /** Host executables (one per target), or one `go version -m` text. */
  hostBinaries?: string[];
  json: boolean;
  quiet: boolean;
  /** Print where each target's time went after the summary. */
  timings: boolean;
  /** Also download the Mattermost-style bundle (mode=exe builds with a plugin.json). */
  bundle: boolean;
  /** Reports for CI (docs/ci.md): a JUnit XML file, a Markdown summary appended to a file, GitHub annotations on stdout, the final document as a file. */
  reports: CiReports;
}

/**
 * `plugforge build [DIR]`: pack DIR, upload it, follow the logs, download and verify the
 * artifacts into --out, print the summary. Exit 0 when every target built and verified,
 * 1 when not, 2 on a usage error, 3 when the server is unreachable or refuses, 130 on Ctrl-C
 * (the build is canceled on the server first).
 */
export async function buildCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseBuildOptions(args);
  if (values.help) {
    process.stdout.write(`${BUILD_USAGE}\n`);
    return EXIT.ok;
  }
  const dir = await checkedInputs(values, positionals);
  const client = clientFrom(values, BUILD_USAGE);
  const a = buildArgsOf(values, dir);
  return exitCodeOf(() => runBuild(client, a), a.json);
}

/** The directory to build, once it and the host files named exist and the options agree; usage errors otherwise. */
async function checkedInputs(values: BuildOptions, positionals: string[]): Promise<string> {
  if (positionals.length > 1)
    throw new UsageError(`build takes one directory, got ${positionals.length}: ${positionals.join(' ')}`, BUILD_USAGE);
  const dir = positionals[0] ?? '.';
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new UsageError(`${dir} is not a directory`, BUILD_USAGE);
  const files: [string, string | undefined][] = [
    ['--host-go-mod', values['host-go-mod']],
    ...(values['host-binary'] ?? []).map((f): [string, string] => ['--host-binary', f]),
  ];
  for (const [flag, file] of files) {
    if (file !== undefined && !(await stat(file).catch(() => undefined))?.isFile())
      throw new UsageError(`${flag} ${file}: no such file`, BUILD_USAGE);
  }
  // targets=mattermost (or darwin/windows targets) builds executables without --mode exe.
  const exeTargets = /\b(mattermost|darwin-|windows-)/.test(values.targets ?? '');
  if (values.bundle && values.mode !== 'exe' && !(values.mode === undefined && exeTargets))
    throw new UsageError('--bundle packs server executables: build with --mode exe (or --targets mattermost)', BUILD_USAGE);
  if (values.annotations !== undefined && values.annotations !== 'github')
    throw new UsageError(`--annotations takes "github" (GitLab reads --junit), not ${JSON.stringify(values.annotations)}`, BUILD_USAGE);
  if (values.annotations !== undefined && values.json)
    throw new UsageError('--annotations github writes to stdout, as --json does: use --document FILE for the build document', BUILD_USAGE);
  return dir;
}

/** What runBuild is given: the query the server reads, the host files, how to report. */
function buildArgsOf(values: BuildOptions, dir: string): BuildArgs {
  return {
    dir,
    out: values.out,
    query: {
      go: values.go,
      targets: values.targets,
      name: values.name,
      host: values.host,
      mode: values.mode,
      ...(values.trimpath !== undefined ? { trimpath: String(values.trimpath) } : {}),
      ...(values.strip ? { strip: 'true' } : {}),
      ...(values.cgo ? { cgo: 'true' } : {}),
      tags: values.tags,
      package: values.package,
      verify: values.verify,
      hosts: values.hosts,
      callback: values.callback,
    },
    ...(values['host-go-mod'] !== undefined ? { hostGoMod: values['host-go-mod'] } : {}),
    ...(values['host-binary']?.length ? { hostBinaries: values['host-binary'] } : {}),
    json: values.json,
    quiet: values.quiet,
    timings: values.timings,
    bundle: values.bundle,
    reports: {
      ...(values.junit !== undefined ? { junit: values.junit } : {}),
      ...(values.summary !== undefined ? { summary: values.summary } : {}),
      ...(values.document !== undefined ? { document: values.document } : {}),
      ...(values.annotations !== undefined ? { annotations: values.annotations as 'github' } : {}),
      pluginDir: dir,
    },
  };
}

/** The command line of `plugforge build`, parsed (--help is the caller's). */
function parseBuildOptions(args: string[]) {
  return parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: {
        ...CONNECTION_OPTIONS,
        go: { type: 'string' },
        targets: { type: 'string' },
        name: { type: 'string' },
        host: { type: 'string' },
        mode: { type: 'string' },
        'host-go-mod': { type: 'string' },
        'host-binary': { type: 'string', multiple: true },
        hosts: { type: 'string' },
        callback: { type: 'string' },
        trimpath: { type: 'boolean' },
        strip: { type: 'boolean' },
        cgo: { type: 'boolean' },
        tags: { type: 'string' },
        package: { type: 'string' },
        verify: { type: 'string' },
        out: { type: 'string', default: 'dist' },
        bundle: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', short: 'q', default: false },
        timings: { type: 'boolean', default: false },
        junit: { type: 'string' },
        summary: { type: 'string' },
        document: { type: 'string' },
        annotations: { type: 'string' },
      },
    },
    BUILD_USAGE,
  );
}

type BuildOptions = ReturnType<typeof parseBuildOptions>['values'];

async function runBuild(client: PlugforgeClient, a: BuildArgs): Promise<number> {
  const info = (line: string) => {
    if (!a.quiet) process.stderr.write(`${line}\n`);
  };
  // With --json, stdout carries the one document; the build's output goes to stderr.
  const logOut = a.json ? process.stderr : process.stdout;

  const listing = await listSourceFiles(a.dir, { exclude: [path.resolve(a.out)] });
  checkListing(listing, a.dir);

  // Ctrl-C: the first one stops what runs and cancels the build; a second one exits at once.
  const interrupt = new AbortController();
  // Every request listens to it: the downloads, early ones and the evidence run side by side.
  setMaxListeners(64, interrupt.signal);
  const onSigint = () => {
    if (interrupt.signal.aborted) process.exit(EXIT.interrupted);
    interrupt.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const doc = await upload(client, a, listing, interrupt.signal);
    if (!doc) return EXIT.interrupted;
    if (doc.matrix) return await runMatrix(client, doc, a, interrupt.signal, info);
    info(`build ${doc.id} accepted: Go ${doc.go}, ${Object.keys(doc.targets).join(', ')} (${client.server}/v1/builds/${doc.id})`);
    if (doc.reusedFrom)
      info(
        `plugforge: identical to build ${doc.reusedFrom} (same source, options, host and images): nothing runs again, its artifacts are this build's`,
      );
    if (doc.status === 'preparing')
      info(
        `plugforge: no worker has builder images of Go ${doc.go} yet: one is making them first (a few minutes; the [images] lines below)`,
      );

    // Each target's artifact is fetched as soon as it has succeeded, while the others build;
    // it is placed in --out only with the rest, once the build has ended.
    const early = new EarlyDownloads(client, a.out, interrupt.signal);
    const fetchEarly = (target: TargetId, status: string) => {
      if (status === 'succeeded') early.start(doc.id, target);
    };
    try {
      let final: BuildDocument;
      try {
        const followed = await client.followLogs(
          doc.id,
          { signal: interrupt.signal },
          (line) => {
            if (!a.quiet) logOut.write(`${line}\n`);
          },
          fetchEarly,
        );
        if (!followed.ended) info(`plugforge: the log stream broke off (${followed.reason}); waiting for the build to end`);
        final = await waitForEnd(client, doc.id, interrupt.signal);
      } catch (err) {
        if (!interrupt.signal.aborted && !isAbort(err)) throw err;
        return await cancelBuild(client, doc.id);
      }
      return await deliver(client, final, a, interrupt.signal, early);
    } finally {
      await early.discard();
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** A matrix build (--hosts naming several releases): followed by its cells, its artifacts under the releases' names, the grid. */
async function runMatrix(
  client: PlugforgeClient,
  doc: BuildDocument,
  a: BuildArgs,
  signal: AbortSignal,
  info: (line: string) => void,
): Promise<number> {
  const m = doc.matrix!;
  info(
    `matrix ${doc.id} accepted: ${m.hosts.join(', ')} × ${[...new Set(m.cells.map((c) => c.target))].join(', ')} in ${m.builds.length} build(s) (${client.server}/v1/builds/${doc.id})`,
  );
  let result;
  try {
    result = await followMatrix(client, doc, a.out, signal, info);
  } catch (err) {
    if (!signal.aborted && !isAbort(err)) throw err;
    return await cancelBuild(client, doc.id);
  }
  const { ok, final, downloads } = result;
  if (a.json) process.stdout.write(`${JSON.stringify({ ...final, downloads }, null, 2)}\n`);
  else process.stdout.write(`\n${matrixTable(final, downloads)}`);
  const placed = downloads.filter((d) => d.verified).length;
  if (placed && !a.quiet) process.stderr.write(`${placed} artifact(s) in ${path.join(a.out, path.sep)}\n`);
  await writeMatrixReports(client, final, a.reports, downloads, signal);
  return ok ? EXIT.ok : EXIT.failed;
}

/**
 * A matrix build's CI reports: each host release as a build of its own (its cells as
 * targets), so JUnit holds a testsuite per release, the summary a table per release, and
 * the annotations each failure once (docs/ci.md).
 */
async function writeMatrixReports(
  client: PlugforgeClient,
  doc: BuildDocument,
  r: CiReports,
  downloads: DownloadResult[],
  signal: AbortSignal,
): Promise<void> {
  const releases = releaseDocuments(doc, downloads);
  if (r.junit !== undefined) {
    // A cell's log is its build's target's; builds shared by releases are read once.
    const tails = new Map<string, string>();
    const suites: string[] = [];
    for (const { host, doc: one, downloads: got } of releases) {
      const logs: Partial<Record<TargetId, string>> = {};
      for (const c of doc.matrix!.cells.filter((c) => c.host === host)) {
        const key = `${c.build} ${c.target}`;
        if (!tails.has(key)) tails.set(key, logTail(await readLog(await client.logs(c.build, c.target, signal))));
        logs[c.target] = tails.get(key)!;
      }
      suites.push(junitSuite(one, logs, got));
    }
    await writeFile(r.junit, junitDocument(suites));
  }
  if (r.summary !== undefined)
    await appendFile(r.summary, releases.map(({ doc: one, downloads: got }) => markdownSummary(one, client.server, got)).join('\n'));
  if (r.document !== undefined) await writeFile(r.document, `${JSON.stringify({ ...doc, downloads }, null, 2)}\n`);
  if (r.annotations === 'github') {
    const dir = path.relative(process.env.GITHUB_WORKSPACE ?? process.cwd(), path.resolve(r.pluginDir));
    const lines = new Set(releases.flatMap(({ doc: one }) => githubAnnotations(one, dir).split('\n').filter(Boolean)));
    if (lines.size) process.stdout.write(`${[...lines].join('\n')}\n`);
  }
}

/**
 * Warns about what the upload leaves out or what the server's default limits would refuse
 * (past them it cuts the upload off part-way, and its reason is then lost with the
 * connection, so the likely culprit is named here first); a directory without go.mod is a
 * usage error.
 */
function checkListing(listing: SourceListing, dir: string): void {
  for (const s of listing.skipped) {
    process.stderr.write(
      `plugforge: warning: left out ${s.name}: ${s.kind === 'symlink' ? 'a symbolic link (links are never uploaded or followed)' : 'not a regular file'}\n`,
    );
  }
  for (const f of listing.files.filter((f) => f.size > DEFAULT_ARCHIVE_LIMITS.maxFileBytes)) {
    process.stderr.write(
      `plugforge: warning: ${f.name} is ${formatBytes(f.size)}; plugforge refuses files over ${formatBytes(DEFAULT_ARCHIVE_LIMITS.maxFileBytes)} (leave it out with ${IGNORE_FILE})\n`,
    );
  }
  if (listing.files.length > DEFAULT_ARCHIVE_LIMITS.maxEntries) {
    process.stderr.write(
      `plugforge: warning: ${listing.files.length} files; plugforge refuses archives of more than ${DEFAULT_ARCHIVE_LIMITS.maxEntries} entries (leave some out with ${IGNORE_FILE})\n`,
    );
  }
  if (!listing.files.some((f) => f.name === 'go.mod')) {
    throw new UsageError(`${dir} has no go.mod: give the plugin's module directory (or check .plugforgeignore)`, BUILD_USAGE);
  }
}

/**
 * After the build: its artifacts into --out (each checked against its sha256), the bundle
 * when asked for, the provenance, signatures and SBOMs beside them, and the summary. Exit 0
 * when every target built and verified.
 */
async function deliver(
  client: PlugforgeClient,
  final: BuildDocument,
  a: BuildArgs,
  signal: AbortSignal,
  early: EarlyDownloads,
): Promise<number> {
  const interrupted = (err: unknown) => {
    if (signal.aborted || isAbort(err)) return undefined;
    throw err;
  };
  const downloading = downloadArtifacts(client, final, a.out, { signal, early });
  // The evidence is fetched beside the artifacts, and kept for the verified ones.
  const keeping = downloadEvidence(client, final, a.out, downloading, { signal });
  keeping.catch(() => undefined);
  const downloads = await downloading.catch(interrupted);
  // A bundle only of a build that succeeded: the server would offer one without the failed targets.
  let bundle: BundleResult | undefined;
  if (downloads && a.bundle && final.status === 'succeeded') {
    const got = await downloadBundle(client, final, a.out, { signal }).catch(interrupted);
    if (!got) return interruptedWhileDownloading();
    bundle = got;
  }
  if (!downloads) return interruptedWhileDownloading();
  const evidence = await keeping.catch(interrupted);
  if (!evidence) return interruptedWhileDownloading();
  if (a.json) {
    process.stdout.write(`${JSON.stringify({ ...final, downloads, ...(bundle ? { bundle } : {}), evidence }, null, 2)}\n`);
    if (!a.quiet) process.stderr.write(failureNotes(final));
  } else {
    process.stdout.write(
      `\n${summaryTable(final, downloads)}${a.timings ? timingsTable(final) : ''}${failureNotes(final)}${bundle ? bundleLine(bundle) : ''}${evidenceLine(evidence, a.out)}`,
    );
    const placed = Object.values(downloads).filter((d) => d.verified).length;
    if (placed && !a.quiet) process.stderr.write(`${placed} artifact(s) in ${path.join(a.out, path.sep)}\n`);
  }
  await writeCiReports(client, final, a.reports, downloads, signal);
  const allVerified = Object.keys(final.targets).every((t) => downloads[t as keyof typeof downloads]?.verified);
  return final.status === 'succeeded' && allVerified && (bundle?.verified ?? true) ? EXIT.ok : EXIT.failed;
}

/**
 * The reports CI reads, once the build has ended and its artifacts are here: the JUnit XML
 * (each target's log tail fetched for it), the Markdown summary, GitHub annotations, the
 * final build document (docs/ci.md).
 */
async function writeCiReports(
  client: PlugforgeClient,
  doc: BuildDocument,
  r: CiReports,
  downloads: Partial<Record<TargetId, DownloadResult>>,
  signal: AbortSignal,
): Promise<void> {
  if (r.junit !== undefined) {
    const logs: Partial<Record<TargetId, string>> = {};
    for (const target of targetsOf(doc)) logs[target] = logTail(await readLog(await client.logs(doc.id, target, signal)));
    await writeFile(r.junit, junitReport(doc, logs, downloads));
  }
  if (r.summary !== undefined) await appendFile(r.summary, markdownSummary(doc, client.server, downloads));
  if (r.document !== undefined) await writeFile(r.document, `${JSON.stringify({ ...doc, downloads }, null, 2)}\n`);
  if (r.annotations === 'github')
    process.stdout.write(githubAnnotations(doc, path.relative(process.env.GITHUB_WORKSPACE ?? process.cwd(), path.resolve(r.pluginDir))));
}

/** A log as text, at most its last 4 MiB. */
async function readLog(res: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of res) {
    text += String(chunk);
    if (text.length > 8 << 20) text = text.slice(-(4 << 20));
  }
  return text;
}

function interruptedWhileDownloading(): number {
  process.stderr.write('plugforge: interrupted while downloading; the build had ended, nothing to cancel\n');
  return EXIT.interrupted;
}

/** Streams the packed directory up (with the host files as a form when given); undefined when interrupted. */
async function upload(
  client: PlugforgeClient,
  a: BuildArgs,
  listing: SourceListing,
  signal: AbortSignal,
): Promise<BuildDocument | undefined> {
  const progress = createUploadProgress(process.stderr, { quiet: a.quiet });
  const hostGoMod = a.hostGoMod !== undefined ? await readFile(a.hostGoMod, 'utf8') : undefined;
  let archive: Readable | undefined;
  let sent = 0;
  // Each try packs the directory anew (a retry after a lost connection: src/client/retry.ts).
  const makeBody = (): UploadBody => {
    archive?.destroy();
    const packed = packCounted(listing, progress, (n) => (sent = n));
    archive = packed.archive;
    const source = packed.counted;
    if (hostGoMod === undefined && !a.hostBinaries?.length) return { stream: source, contentType: 'application/gzip' };
    return multipartBody([
      ...(hostGoMod !== undefined ? [{ name: 'hostGoMod', value: hostGoMod }] : []),
      ...(a.hostBinaries ?? []).map((file) => ({
        name: 'hostBinary',
        filename: path.basename(file),
        contentType: 'application/octet-stream',
        open: () => createReadStream(file),
      })),
      { name: 'source', filename: 'source.tar.gz', contentType: 'application/gzip', open: () => source },
    ]);
  };

  try {
    const doc = await client.submit(makeBody, a.query, signal);
    progress.done(sent);
    return doc;
  } catch (err) {
    progress.stop();
    archive?.destroy();
    if (signal.aborted || isAbort(err)) {
      process.stderr.write('plugforge: interrupted during the upload; no build was started\n');
      return undefined;
    }
    throw err;
  }
}

/** The packed directory as a stream that counts what is sent, with the progress bar started anew. */
function packCounted(listing: SourceListing, progress: ReturnType<typeof createUploadProgress>, onSent: (bytes: number) => void) {
  // Packing starts as soon as the stream exists: the bar first.
  progress.start(listing.files.length, listing.bytes);
  let packed = 0;
  let sent = 0;
  const archive = packSource(listing, {
    onFileBytes: (n) => {
      packed += n;
      progress.update(packed, sent);
    },
  });
  const counted: Readable = archive.pipe(
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        sent += chunk.length;
        onSent(sent);
        done(null, chunk);
      },
    }),
  );
  archive.on('error', (err) => counted.destroy(err));
  return { archive, counted };
}

/** The build document once the build has ended (the log stream ends with it, so this is mostly one request). */
async function waitForEnd(client: PlugforgeClient, id: string, signal: AbortSignal): Promise<BuildDocument> {
  for (;;) {
    const doc = await client.build(id, signal);
    if (TERMINAL.has(doc.status as BuildStatus)) return doc;
    await sleep(1000, undefined, { signal });
  }
}

async function cancelBuild(client: PlugforgeClient, id: string): Promise<number> {
  process.stderr.write(`\nplugforge: interrupted: canceling build ${id}\n`);
  try {
    await client.cancel(id);
    process.stderr.write(`plugforge: build ${id} canceled\n`);
  } catch (err) {
    if (err instanceof ClientError && err.code === 'build_finished') process.stderr.write(`plugforge: build ${id} had already ended\n`);
    else process.stderr.write(`plugforge: could not cancel build ${id}: ${(err as Error).message}\n`);
  }
  return EXIT.interrupted;
}
