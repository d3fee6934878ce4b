import type { Readable } from 'node:stream';
import { readBody, readTar } from '../archive/tar-streams.js';
import type { TargetError } from '../builds/build-document.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { compareGoVersions, parseGoVersion } from '../images/go-version.js';
import type { DependencyStep } from './steps.js';
import { diskLimitReached } from './disk-limit.js';
import type { LogSink } from './log-sink.js';
import { DEPS_MARK } from './plan.js';
import { workTar } from './source-tar.js';
import { compareLinked, mismatchError, parseModuleLines, type HostMatch } from '../host/host-match.js';
import { DeadlineError, OutputCollector } from './container-run.js';
import { BUILD_PARTS, executePipeline, PipelineRun, type PipelineDeps } from './pipeline.js';
import { redactUrls } from '../redact-url.js';

/** One module of `go mod download -json`. */
export interface DownloadedModule {
  Path: string;
  Version: string;
  Sum?: string;
  GoModSum?: string;
  Error?: string;
}

export interface DependencyOutcome {
  status: 'succeeded' | 'failed' | 'canceled';
  modules?: DownloadedModule[];
  /** Modules that were not in the module cache before this phase. */
  downloaded?: string[];
  /** go.sum lines for the versions host alignment chose that the source's go.sum lacked. */
  goSumAdded?: string[];
  error?: TargetError;
}

/**
 * The dependency phase of a build: `go mod download` of the plugin's module graph into the
 * tenant's module cache, in a hardened container, once per build; a pipeline of one step,
 * run by the executor. Go checks every download against go.sum; plugforge then requires
 * go.sum to name every module it used (Go would otherwise trust a module go.sum does not
 * mention). Resolves with the outcome when final; rejects with a retryable PlugforgeError
 * when the proxy or the engine was unreachable.
 */
export async function runDependencyPhase(
  deps: PipelineDeps,
  step: DependencyStep,
  sourceSha256: string,
  signal: AbortSignal,
  toolchains: string[],
  /** The host to match: its go.mod alignment goes in, and the linked modules are checked against it. */
  host?: HostMatch,
): Promise<DependencyOutcome> {
  const run = new PipelineRun(deps, step.container.limits.maxLogBytes, signal);
  return executePipeline<DependencyOutcome>(run, [step], {
    dependencies: async (s) => ({ end: await downloadModules(run, s, sourceSha256, toolchains, host) }),
    finish: () => {
      throw new Error('the dependencies step ends its pipeline');
    },
  });
}

/** The dependencies step: the download in its container, then go.sum and the host's versions checked against what Go used. */
async function downloadModules(
  run: PipelineRun,
  step: DependencyStep,
  sourceSha256: string,
  toolchains: string[],
  host: HostMatch | undefined,
): Promise<DependencyOutcome> {
  const { deps, log } = run;
  const spec = step.container;
  const stdout = new OutputCollector(16 * 1024 * 1024);
  const phase = run.container(spec, BUILD_PARTS);
  const source = workTar((await deps.store.open(sourceSha256)).stream, host?.goMod ? { goMod: host.goMod } : {});
  const exit = await phase
    .run(source, { stdout, stderr: log }, run.signal, () => {
      if (host) noteHost(log, host);
      log.note(
        `downloading modules: go mod download (GOPROXY ${step.proxy.startsWith('file://') ? 'file:///proxy' : redactUrls(step.proxy)})`,
      );
    })
    .catch((err: unknown) => {
      throw err instanceof DeadlineError
        ? new PlugforgeError('timeout', `Downloading modules did not finish within ${spec.limits.timeoutMs / 1000} s.`, { retryable: true })
        : err;
    });
  await log.drain();
  const output = parseDownloadOutput(stdout.text());
  const { cached, download } = output;
  const filled = exit.exitCode !== 0 ? diskLimitReached(spec, exit.full, log.tail(60)) : undefined;
  if (filled) throw new PlugforgeError('disk_limit', `Downloading modules ${filled}:\n${log.tail(8)}`);
  if (exit.exitCode !== 0 || download.some((m) => m.Error)) {
    throw classifyDependencyFailure(`${log.tail(60)}\n${download.map((m) => m.Error ?? '').join('\n')}`, toolchains);
  }
  if (host) checkAgainstHost(log, host, output);
  const goSumAdded = await checkGoSum(deps, log, sourceSha256, download, host);
  const cachedSet = new Set(cached.filter((m) => !m.Error).map((m) => `${m.Path}@${m.Version}`));
  const downloaded = download.map((m) => `${m.Path}@${m.Version}`).filter((m) => !cachedSet.has(m));
  for (const m of download)
    log.note(`module ${m.Path} ${m.Version}: ${cachedSet.has(`${m.Path}@${m.Version}`) ? 'in the module cache' : 'downloaded'} (${m.Sum})`);
  log.note(`modules: ${download.length}, downloaded: ${downloaded.length}, from the cache: ${download.length - downloaded.length}`);
  return { status: 'succeeded', modules: download, downloaded, ...(goSumAdded.length ? { goSumAdded } : {}) };
}

/**
 * Every module Go used must be named in go.sum; the versions host alignment chose are the
 * host's, not the author's, so go.sum may not name them: their lines come from what Go
 * computed (and the checksum database checked, if on), and are returned to be added.
 */
async function checkGoSum(
  deps: PipelineDeps,
  log: LogSink,
  sourceSha256: string,
  download: DownloadedModule[],
  host: HostMatch | undefined,
): Promise<string[]> {
  const goSum = await readGoSum((await deps.store.open(sourceSha256)).stream);
  const listed = (m: DownloadedModule) =>
    goSum.has(`${m.Path} ${m.Version} ${m.Sum}`) && goSum.has(`${m.Path} ${m.Version}/go.mod ${m.GoModSum}`);
  const chosen = new Set((host?.aligned ?? []).map((a) => `${a.path}@${a.to}`));
  const goSumAdded = download
    .filter((m) => !listed(m) && chosen.has(`${m.Path}@${m.Version}`) && m.Sum && m.GoModSum)
    .flatMap((m) => [`${m.Path} ${m.Version} ${m.Sum}`, `${m.Path} ${m.Version}/go.mod ${m.GoModSum}`]);
  for (const line of goSumAdded) log.note(`go.sum: added ${line} (the host's version)`);
  const unlisted = download.filter((m) => !listed(m) && !chosen.has(`${m.Path}@${m.Version}`));
  if (unlisted.length) {
    const first = unlisted[0]!;
    throw new PlugforgeError(
      'module_missing_go_sum',
      `go.sum has no checksum for ${unlisted.map((m) => `${m.Path}@${m.Version}`).join(', ')}. Run "go mod tidy" (or go mod download ${first.Path}) and upload go.sum with the source.`,
      { details: { modules: unlisted.map((m) => `${m.Path}@${m.Version}`) } },
    );
  }
  return goSumAdded;
}

export interface DependencyOutput {
  cached: DownloadedModule[];
  download: DownloadedModule[];
  /** The modules the plugin's packages link ("path version" lines), when a host is matched; undefined when listing failed. */
  linked?: string;
  /** `go mod graph`, when a host is matched. */
  graph?: string;
}

/** Splits the script's output into its sections: cache-only pass, download pass, and when matching a host, linked modules and graph. */
export function parseDownloadOutput(text: string): DependencyOutput {
  const section = (mark: string) => {
    const at = text.indexOf(mark);
    if (at < 0) return undefined;
    const start = at + mark.length;
    const ends = Object.values(DEPS_MARK)
      .map((m) => text.indexOf(m, start))
      .filter((i) => i >= 0);
    return text.slice(start, ends.length ? Math.min(...ends) : text.length);
  };
  const failedListing = text.includes(DEPS_MARK.listFailed);
  const linked = failedListing ? undefined : section(DEPS_MARK.linked);
  const graph = section(DEPS_MARK.graph);
  return {
    cached: parseJsonStream(section(DEPS_MARK.cached) ?? ''),
    download: parseJsonStream(section(DEPS_MARK.download) ?? ''),
    ...(linked !== undefined ? { linked } : {}),
    ...(graph !== undefined ? { graph } : {}),
  };
}

function noteHost(log: LogSink, host: HostMatch): void {
  log.note(
    `host: described by its ${host.from === 'binary' ? 'binary' : 'go.mod'}, ${host.modules.length} modules${host.go ? `, go${host.go}` : ''}, trimpath ${host.trimpath ? 'on' : 'off'}${host.tags.length ? `, tags ${host.tags.join(',')}` : ''}`,
  );
  for (const a of host.aligned) log.note(`host: aligned ${a.path} ${a.from} -> ${a.to} (the host's version)`);
  for (const n of host.notes) log.note(`host: ${n}`);
}

/**
 * After the download, minimal version selection has had its say: every module the plugin
 * links that the host links too must be at the host's version, or the host would refuse
 * the plugin. Refused here, before any target builds.
 */
function checkAgainstHost(log: LogSink, host: HostMatch, output: DependencyOutput): void {
  let linked = output.linked !== undefined ? parseModuleLines(output.linked) : undefined;
  if (!linked) {
    log.note('host: listing the linked packages failed; checking the whole download list instead');
    linked = output.download.map((m) => ({ path: m.Path, version: m.Version }));
  }
  const mismatches = compareLinked(linked, host.modules, output.graph ?? '');
  if (mismatches.length) throw mismatchError(mismatches);
  const shared = linked.filter((m) => host.modules.some((h) => h.path === m.path));
  log.note(`host: the plugin links ${linked.length} modules, ${shared.length} of them shared with the host, all at the host's versions`);
}

/** `go mod download -json` prints one indented object per module, one after another. */
function parseJsonStream(text: string): DownloadedModule[] {
  const out: DownloadedModule[] = [];
  for (const chunk of text.split(/\n(?=\{)/)) {
    const trimmed = chunk.trim();
    if (!trimmed.startsWith('{')) continue;
    try {
      const m = JSON.parse(trimmed) as DownloadedModule;
      if (m.Path) out.push(m);
    } catch {
      // Not JSON (should not happen on stdout): ignored, the exit status decides.
    }
  }
  return out;
}

/** Turns Go's words about a failed download into an error that names the module and says why. */
export function classifyDependencyFailure(text: string, toolchains: string[]): PlugforgeError {
  let m = /verifying (\S+?)@(\S+?)(\/go\.mod)?: checksum mismatch[\s\S]*?downloaded:\s+(\S+)[\s\S]*?go\.sum:\s+(\S+)/.exec(text);
  if (m) {
    return new PlugforgeError(
      'module_checksum_mismatch',
      `Checksum mismatch for ${m[1]}@${m[2]}${m[3] ?? ''}: the proxy served ${m[4]}, go.sum says ${m[5]}. Fix go.sum (go mod tidy) or find out who changed the module.`,
      {
        details: { module: `${m[1]}@${m[2]}` },
      },
    );
  }
  m = /verifying (\S+?)@(\S+?): checksum mismatch/.exec(text);
  if (m)
    return new PlugforgeError('module_checksum_mismatch', `Checksum mismatch for ${m[1]}@${m[2]} between the proxy and go.sum.`, {
      details: { module: `${m[1]}@${m[2]}` },
    });
  m = /go\.mod requires go >= (\S+) \(running go (\S+); GOTOOLCHAIN=local\)/.exec(text);
  if (m) {
    const need = parseGoVersion(m[1]!);
    const enough = need ? toolchains.filter((v) => compareGoVersions(parseGoVersion(v)!, { ...need, patch: need.patch ?? 0 }) >= 0) : [];
    return new PlugforgeError(
      'toolchain_too_old',
      `go: go.mod requires go >= ${m[1]} (running go ${m[2]}; GOTOOLCHAIN=local). ${enough.length ? `Toolchains that would do: ${enough.join(', ')}.` : `Build a newer toolchain: plugforge images build --go ${m[1]}.`}`,
    );
  }
  m =
    /(?:go: )?(\S+?)@(\S+?): (?:reading \S+: )?(no such file or directory|404 Not Found|410 Gone|unknown revision \S+|invalid version: [^\n]+|not found[^\n]*)/.exec(
      text,
    );
  if (m)
    return new PlugforgeError(
      'module_not_found',
      `Module ${m[1]}@${m[2]} is not on the module proxy (${m[3]}). Check the version in go.mod, or the proxy plugforge uses.`,
      { details: { module: `${m[1]}@${m[2]}` } },
    );
  m = /missing go\.sum entry for (?:go\.mod file|module providing package) ?(\S*)/.exec(text);
  if (m)
    return new PlugforgeError(
      'module_missing_go_sum',
      `go.sum is missing an entry${m[1] ? ` for ${m[1]}` : ''}. Run "go mod tidy" and upload go.sum with the source.`,
    );
  if (/dial tcp|no such host|connection refused|i\/o timeout|TLS handshake timeout|network is unreachable|connection reset/.test(text)) {
    return new PlugforgeError('proxy_unreachable', `The module proxy could not be reached: ${lastLine(text)}. The build will be retried.`, {
      status: 503,
      retryable: true,
    });
  }
  return new PlugforgeError('dependencies_failed', `Downloading modules failed: ${lastLine(text)}`);
}

function lastLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('[plugforge]'))
      .at(-1) ?? '(no output)'
  );
}

/** The lines of the source's go.sum (empty when it has none). */
async function readGoSum(source: Readable): Promise<Set<string>> {
  let text = '';
  await readTar(source, async (header, body) => {
    if (header.name !== 'go.sum' || header.type !== 'file') return;
    text = (
      await readBody(
        body,
        MAX_GO_SUM_BYTES,
        () => new PlugforgeError('archive_file_too_large', `go.sum is larger than ${MAX_GO_SUM_BYTES / 1048576} MiB.`),
      )
    ).toString('utf8');
    return 'stop';
  });
  return new Set(
    text
      .split('\n')
      .map((l) => l.trim().replace(/\s+/g, ' '))
      .filter(Boolean),
  );
}

const MAX_GO_SUM_BYTES = 8 * 1024 * 1024;
