import { Writable } from 'node:stream';
import type {
  ArtifactInfo,
  FingerprintCheck,
  PhaseTimings,
  ProbeCheck,
  ReleaseCheck,
  TargetError,
  VerifyResult,
} from '../builds/build-document.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { ContainerHandle, DiskName, ExitStatus } from '../runtime/build-runtime.js';
import { TARGETS } from '../contract/targets.js';
import { checkElfForTarget } from '../verify/elf-header.js';
import { checkExeHeader } from '../verify/exe-header.js';
import { storeArtifact } from './artifact-reader.js';
import type { ContainerSpec } from '../runtime/build-spec.js';
import type { BuildStep, Step, VerifyStep } from './steps.js';
import { DeadlineError, OutputCollector, type ContainerRun } from './container-run.js';
import { BUILD_PARTS, executePipeline, PipelineRun, type PipelineDeps } from './pipeline.js';
import { diskLimitReached } from './disk-limit.js';
import { LogSink } from './log-sink.js';
import { workTar, type WorkOverrides } from './source-tar.js';
import { parseProbeReport } from '../verify/load-probe.js';
import {
  compareFingerprints,
  readPackageFingerprints,
  readPackageOrder,
  stdOnlyNote,
  type PackageFingerprints,
} from '../verify/package-fingerprints.js';
import { ElfFormatError } from '../verify/elf-sections.js';
import { linkerPrefix, missingExports } from '../verify/plugin-exports.js';

export interface TargetOutcome {
  status: 'succeeded' | 'failed' | 'canceled';
  error?: TargetError;
  artifact?: ArtifactInfo;
  verify?: VerifyResult;
  /** Where the pipeline's time went (the queue wait is the worker's to add). */
  phases?: PhaseTimings;
}

/** A host binary of the target's architecture: its package fingerprints, read when the build was submitted. */
export interface HostFingerprints {
  sha256: string;
  go: string;
  fingerprints: PackageFingerprints;
}

/** A host release of a matrix group and its executable of the target. */
export interface ReleaseHost {
  release: string;
  host: HostFingerprints;
}

/**
 * What a target's pipeline runs on: the source (and host matching's changes to it), what
 * the artifact must be, and how it is checked beyond its ELF header besides the loading
 * probe (which is the pipeline's verify step): against the host binary's package
 * fingerprints, strongest of all. See docs/architecture.md "Three levels of proof".
 */
export interface TargetJob {
  sourceSha256: string;
  mode: 'plugin' | 'exe';
  /** The host binary given for the target's architecture. */
  host?: HostFingerprints;
  /** A matrix group's releases with an executable of the target: the artifact is checked against each, and fails only when none takes it. */
  releases?: ReleaseHost[];
  /** Why this worker cannot run the probe for this target (the worker's limitation, not the plugin's): the pipeline has no verify step. */
  probeUnavailable?: string;
  /** Host matching's changes to the source (aligned go.mod, go.sum lines, the host's modules). */
  overrides?: WorkOverrides;
  /** The symbols the host profile looks up, which a plugin's dynamic symbol table must define. */
  exports?: PluginExports;
}

/** What a host of the build's profile looks up in the plugin, and the plugin's path (its symbols' prefix). */
export interface PluginExports {
  pluginPath: string;
  symbols: readonly string[];
}

/** The artifact a build step stored, and what was proven of it so far. */
interface Built {
  container: ContainerRun;
  artifact: ArtifactInfo;
  elf: string;
  /** What the artifact's dynamic symbol table showed of the profile's symbols. */
  exported?: string;
  fingerprints?: FingerprintCheck & { message: string };
  /** Each release's check, for a matrix group's build. */
  releases?: ReleaseCheck[];
}

/**
 * Runs a target's pipeline (its build step, for a plugin this worker can load also its
 * verify step) on the executor: container, source in, compile, artifact out, checks,
 * stored; the loading probe. Every container is removed in every case. Resolves to the
 * outcome when the result is final (built, compile error, timeout, cancel, bad artifact);
 * rejects with a retryable PlugforgeError when the failure was the machinery's (engine gone).
 * `report` is told the outcome as soon as it is known, before the containers are removed
 * (its phases then lack the teardown); the outcome returned has every phase, or with
 * `detach` (handed the teardown to await) gets the teardown's once that is done.
 */
export async function runTargetBuild(
  deps: PipelineDeps,
  steps: readonly Step[],
  job: TargetJob,
  signal: AbortSignal,
  report?: (outcome: TargetOutcome) => Promise<void>,
  detach?: (teardown: Promise<void>) => void,
): Promise<TargetOutcome> {
  const run = new PipelineRun(deps, steps[0]!.container.limits.maxLogBytes, signal);
  let built: Built | undefined;
  let loaded: { outcome: ProbeOutcome; how: string } | undefined;
  // The probe runs by exec in the holder of the build's disks, made of the probe's spec,
  // where the build left the artifact and the probe binary, once the build's container is
  // gone (docs/decisions.md, "The loading probe runs in the holder"; SECURITY.md).
  const verify = steps.find((s): s is VerifyStep => s.kind === 'verify');
  const outcome = await executePipeline<TargetOutcome>(
    run,
    steps,
    {
      build: async (step) => {
        const result = await buildStep(run, step, run.container(step.container, BUILD_PARTS, verify?.container), job);
        if ('end' in result) return result;
        built = result.built;
        return { next: true };
      },
      verify: async (step) => {
        if (!built) throw new Error('a verify step needs the build step before it');
        // Nothing of the build runs while the probe does: the disks hold what was stored.
        await built.container.release();
        const outcome = await run.timed('loadCheck', () => runProbe(run, step, built!.container));
        if (outcome.status === 'failed') {
          const verify = {
            ...verifyResult('failed', outcome.message, {
              ...(built.fingerprints ? { fingerprints: built.fingerprints } : {}),
              probe: { status: 'failed', how: step.how },
            }),
            ...(built.releases ? { releases: built.releases } : {}),
          };
          return {
            end: {
              status: 'failed',
              artifact: built.artifact,
              verify,
              error: { code: outcome.code, message: `${built.artifact.name}: ${outcome.message}` },
            },
          };
        }
        loaded = { outcome, how: step.how };
        return { next: true };
      },
      finish: () => {
        if (!built) throw new Error('a target pipeline needs a build step');
        if (!loaded && job.probeUnavailable) {
          loaded = { outcome: { status: 'skipped', message: job.probeUnavailable }, how: '' };
          run.log.note(`verify: the loading probe was skipped: ${job.probeUnavailable}`);
        }
        return {
          status: 'succeeded',
          artifact: built.artifact,
          verify: {
            ...passedOrSkipped(
              [built.elf, built.exported].filter(Boolean).join('; '),
              built.fingerprints,
              loaded?.outcome,
              loaded?.how || undefined,
              steps.some((st) => st.kind === 'build' && TARGETS[st.target].header) ? 'header' : 'elf',
            ),
            ...(built.releases ? { releases: built.releases } : {}),
          },
        };
      },
    },
    report && ((o) => report({ ...o, phases: { ...run.phases } })),
    detach,
  );
  // The teardown has run, or (detached) adds its phase to these once it has.
  return { ...outcome, phases: run.phases };
}

/**
 * A target's build step: compile in its container, the artifact out into the store, its
 * ELF header checked, the host profile's symbols looked for in its dynamic symbol table,
 * then (with a host binary given) its package fingerprints compared with the host's:
 * plugin.Open refuses a plugin exactly when a package both link differs.
 */
async function buildStep(
  run: PipelineRun,
  step: BuildStep,
  container: ContainerRun,
  job: TargetJob,
): Promise<{ built: Built } | { end: TargetOutcome }> {
  const { deps, log } = run;
  const spec = step.container;
  const source = await deps.store.open(job.sourceSha256);
  const pids = new PidsLimitWatch(log);
  const exit = await container
    .run(workTar(source.stream, job.overrides ?? {}), { stdout: pids }, run.signal, () => log.note(`${spec.image}: ${step.command}`))
    .catch((err: unknown) => {
      throw err instanceof DeadlineError ? timeoutError(spec) : err;
    });
  await log.drain();
  const refused = buildFailure(spec, exit, log, pids);
  if (refused) return { end: failed(log, refused) };

  const taken = await run.timed('artifactOut', () => takeArtifact(deps, container.container, step, job.mode, log));
  if ('failed' in taken) return { end: taken.failed };
  const { artifact, elf } = taken;
  const { host, exports } = job;
  if (!host && !exports?.symbols.length) return { built: { container, artifact, elf } };
  const bytes = await readAll((await deps.store.open(artifact.sha256)).stream, spec.limits.maxArtifactBytes);
  const exported = exports?.symbols.length ? checkExports(bytes, exports, log) : undefined;
  if (exported?.status === 'failed') {
    const verify = verifyResult('failed', exported.message, {});
    return {
      end: { status: 'failed', artifact, verify, error: { code: 'symbol_missing', message: `${artifact.name}: ${exported.message}` } },
    };
  }
  const said = exported ? { exported: exported.message } : {};
  if (!host && !job.releases?.length) return { built: { container, artifact, elf, ...said } };
  const releases = job.releases?.length
    ? await run.timed('loadCheck', async () =>
        job.releases!.map(({ release, host }) => ({ release, ...checkFingerprints(host, bytes, log, release) })),
      )
    : undefined;
  // A matrix group's artifact goes on while one release takes it; each release's cell has its own check.
  const fingerprints = releases
    ? (releases.find((c) => c.status === 'passed') ?? releases[0]!)
    : await run.timed('loadCheck', async () => checkFingerprints(host!, bytes, log));
  const perRelease = releases ? { releases: releases.map(releaseCheckOf) } : {};
  if (fingerprints.status === 'failed') {
    const verify = { ...verifyResult('failed', fingerprints.message, { fingerprints }), ...perRelease };
    return {
      end: {
        status: 'failed',
        artifact,
        verify,
        error: {
          code: fingerprints.differing.length ? 'package_mismatch' : 'verify_failed',
          message: `${artifact.name}: ${fingerprints.message}`,
        },
      },
    };
  }
  return { built: { container, artifact, elf, ...said, fingerprints, ...perRelease } };
}

function releaseCheckOf(c: FingerprintCheck & { message: string; release: string }): ReleaseCheck {
  return {
    release: c.release,
    hostBinary: c.hostBinary,
    go: c.go,
    compared: c.compared,
    differing: c.differing,
    status: c.status === 'passed' ? 'passed' : 'failed',
    message: c.message,
  };
}

/**
 * The host profile's symbols in the artifact's dynamic symbol table, read from the stored
 * bytes: the plugin's own output (its init runs in the probe) cannot stand in for them.
 */
function checkExports(bytes: Buffer, exports: PluginExports, log: LogSink): { status: 'passed' | 'failed'; message: string } {
  let missing: string[];
  try {
    missing = missingExports(bytes, exports.pluginPath, exports.symbols);
  } catch (err) {
    if (!(err instanceof ElfFormatError)) throw err;
    missing = [...exports.symbols];
    log.note(`verify: the artifact's dynamic symbol table cannot be read: ${err.message}`);
  }
  const message = missing.length
    ? `the host looks up ${missing.join(', ')}, which the plugin does not export (no ${missing.map((m) => `${linkerPrefix(exports.pluginPath)}.${m}`).join(', ')} defined in its dynamic symbol table): declare ${missing.length > 1 ? 'them' : 'it'} as exported functions or variables of the plugin's main package`
    : `symbols ${exports.symbols.join(', ')} exported (dynamic symbol table)`;
  log.note(`verify: ${message}`);
  return { status: missing.length ? 'failed' : 'passed', message };
}

/** The artifact out of the container into the store, its ELF header checked: the artifact and what the header says, or the failed outcome. */
async function takeArtifact(
  deps: PipelineDeps,
  handle: ContainerHandle,
  step: BuildStep,
  mode: 'plugin' | 'exe',
  log: LogSink,
): Promise<{ artifact: ArtifactInfo; elf: string } | { failed: TargetOutcome }> {
  const archive = await deps.runtime.getArchive(handle, step.artifact.path);
  const stored = await storeArtifact(archive, step.artifact.name, deps.store, step.container.limits.maxArtifactBytes);
  const artifact: ArtifactInfo = { name: step.artifact.name, size: stored.size, sha256: stored.sha256 };
  const t = TARGETS[step.target];
  // darwin and windows executables by their Mach-O or PE header, the others by ELF's.
  const problem = t.header ? checkExeHeader(stored.head, t.header) : checkElfForTarget(stored.head, t, mode);
  if (problem) {
    log.note(`verify: ${problem}`);
    return {
      failed: {
        status: 'failed',
        error: { code: 'verify_failed', message: `${artifact.name}: ${problem}` },
        verify: { status: 'failed', message: problem, method: t.header ? 'header' : 'elf' },
      },
    };
  }
  const elf = t.header
    ? `${t.header.format === 'macho' ? 'Mach-O 64-bit' : 'PE32+'} ${t.header.name} executable for ${t.goos}`
    : `ELF ${t.elfClass === 2 ? '64' : '32'}-bit ${t.elfMachineName} (e_machine ${t.elfMachine}) ${mode === 'plugin' ? 'shared object' : 'executable'}`;
  log.note(`built ${artifact.name}: ${stored.size} bytes, sha256 ${stored.sha256}; ${elf}`);
  return { artifact, elf };
}

/**
 * Why a build container's exit fails the target, or nothing when it succeeded. A SIGKILL
 * that was neither the memory limit's nor ours (a cancel or the deadline throws before
 * this) came from outside the build, e.g. an engine that stopped and took its containers
 * along: the machinery's failure, thrown to be retried.
 */
function buildFailure(spec: ContainerSpec, exit: ExitStatus, log: LogSink, pids: PidsLimitWatch): TargetError | undefined {
  if (exit.oomKilled)
    return {
      code: 'out_of_memory',
      message: `The build ran out of its ${Math.round(spec.limits.memoryBytes / 1048576)} MiB memory limit and was killed.`,
    };
  if (exit.exitCode === 137) {
    throw new PlugforgeError(
      'container_killed',
      'The build container was killed from outside the build (exit 137: its Docker engine stopping, or a docker kill).',
      { status: 503, retryable: true },
    );
  }
  if (exit.exitCode === 0) return undefined;
  const filled = diskLimitReached(spec, exit.full, log.tail(40));
  if (filled) return { code: 'disk_limit', message: `The build ${filled} and failed:\n${log.tail(12) || '(no output)'}` };
  if (pids.hit) {
    return {
      code: 'pids_limit',
      message: `The build ran into its limit of ${spec.limits.pidsLimit} processes and threads (fork or thread creation refused) and failed:\n${log.tail(12) || '(no output)'}`,
    };
  }
  return { code: 'compile_failed', message: `go build exited with status ${exit.exitCode}:\n${log.tail(40) || '(no output)'}` };
}

/**
 * Loads the artifact with the probe, in the holder of the build's disks (the artifact as
 * stored, the probe the build made), a container made of the probe's spec: the probe runs
 * the plugin's init functions, so it gets a build's hardening and limits, and no cache.
 * Resolves to whether the artifact loaded and has the profile's symbols.
 */
async function runProbe(run: PipelineRun, probe: VerifyStep, building: ContainerRun): Promise<ProbeOutcome> {
  const { log, signal } = run;
  const { container: spec, symbols, how } = probe;
  const stdout = new OutputCollector(64 * 1024);
  const pids = new PidsLimitWatch(log);
  let exit: ExitStatus;
  try {
    // The probe has a deadline of its own: a plugin whose init never returns fails
    // verification (its artifact stays downloadable), whatever the build took.
    exit = await building.runSandbox({ stdout, stderr: pids }, signal, () =>
      log.note(
        `verify: loading ${probe.artifact.name} into a probe host built with the same toolchain and the host's settings (${probe.probeSettings}), run ${how} (no cache mounted)${symbols.length ? `, looking up ${symbols.join(', ')}` : ''}`,
      ),
    );
  } catch (err) {
    if (err instanceof DeadlineError) return probeTimedOut(building.fullAtDeadline, spec, log);
    throw err;
  }
  await log.drain();
  const report = parseProbeReport(stdout.text());
  if (exit.exitCode === 137 && !exit.oomKilled && report.result === 'unknown') {
    // As for a build: SIGKILL that was not ours nor the memory limit's, most likely the
    // engine stopping with its containers. Retried; a plugin that kills itself so fails
    // every attempt and ends container_killed.
    throw new PlugforgeError(
      'container_killed',
      'The loading probe was killed from outside (exit 137: its Docker engine stopping, a docker kill, or the plugin killing itself).',
      { status: 503, retryable: true },
    );
  }
  if (exit.exitCode === 0 && report.result === 'loaded') {
    // The report only says plugin.Open returned: the plugin's init could have printed it.
    // The symbols were found in its dynamic symbol table (checkExports).
    const message = `loaded by plugin.Open ${how}`;
    log.note(`verify: ${message}`);
    return { status: 'passed', message };
  }
  if (report.result === 'unknown' && LOADER_CANNOT_RUN.test(log.tail(8))) {
    // The worker's limitation (its kernel or emulator), not the plugin's.
    const message = `${how} cannot run ${probe.target} programs on this worker: ${log.tail(2)}`;
    log.note(`verify: the loading probe was skipped: ${message}`);
    return { status: 'skipped', message };
  }
  const result = probeFailure(spec, report, exit, log, pids);
  log.note(`verify: ${result.message}`);
  return result;
}

/** A probe stopped at its deadline (`full`: its disks measured just before): its init functions never returned, or filled a disk first. */
function probeTimedOut(full: DiskName[], spec: ContainerSpec, log: LogSink): ProbeOutcome {
  const filled = diskLimitReached(spec, full, log.tail(40));
  const message = filled
    ? `loading the plugin ${filled} (its init functions) and did not finish within ${spec.limits.timeoutMs / 1000} s; the probe was killed`
    : `loading the plugin did not finish within ${spec.limits.timeoutMs / 1000} s (its init functions); the probe was killed`;
  log.note(`verify: ${message}`);
  return { status: 'failed', code: filled ? 'disk_limit' : 'timeout', message };
}

/** Why the probe refused the artifact, from its report and how its container ended. */
function probeFailure(
  spec: ContainerSpec,
  report: ReturnType<typeof parseProbeReport>,
  exit: ExitStatus,
  log: LogSink,
  pids: PidsLimitWatch,
): { status: 'failed'; code: string; message: string } {
  const failed = (code: string, message: string) => ({ status: 'failed' as const, code, message });
  if (report.result === 'symbol_missing')
    return failed('symbol_missing', `the host looks up ${report.symbol}, which the plugin does not export (${report.message ?? ''})`);
  if (report.result === 'open_failed') return failed('plugin_load_failed', `plugin.Open refused it: ${report.message ?? ''}`);
  if (exit.oomKilled) return failed('out_of_memory', 'loading the plugin ran out of memory (its init functions)');
  const filled = diskLimitReached(spec, exit.full, log.tail(40));
  if (filled) return failed('disk_limit', `loading the plugin ${filled} (its init functions): ${log.tail(4) || '(no output)'}`);
  if (pids.hit)
    return failed(
      'pids_limit',
      `loading the plugin ran into the limit of ${spec.limits.pidsLimit} processes and threads (its init functions)`,
    );
  return failed('verify_failed', `the loading probe exited with status ${exit.exitCode}: ${log.tail(8) || '(no output)'}`);
}

/** What the loading probe found: loaded, not run on this worker (the worker's limitation), or refused. */
type ProbeOutcome =
  { status: 'passed'; message: string } | { status: 'skipped'; message: string } | { status: 'failed'; code: string; message: string };

/**
 * The verification of an artifact nothing refused: passed on what did run (the host
 * binary's fingerprints, the probe, or the ELF header alone), or skipped when the probe
 * could not run here and no host binary was compared.
 */
function passedOrSkipped(
  elf: string,
  fingerprints: (FingerprintCheck & { message: string }) | undefined,
  loaded: ProbeOutcome | undefined,
  how: string | undefined,
  base: 'elf' | 'header' = 'elf',
): VerifyResult {
  const probe: ProbeCheck | undefined =
    loaded?.status === 'passed'
      ? { status: 'passed', ...(how ? { how } : {}) }
      : loaded?.status === 'skipped'
        ? { status: 'skipped', ...(how ? { how } : {}), reason: loaded.message }
        : undefined;
  const said = [
    elf,
    fingerprints?.message,
    loaded?.status === 'passed'
      ? loaded.message
      : loaded?.status === 'skipped'
        ? `not loaded on this worker: ${loaded.message}`
        : undefined,
  ];
  const status = probe?.status === 'skipped' && !fingerprints ? 'skipped' : 'passed';
  return verifyResult(
    status,
    said.filter(Boolean).join('; '),
    { ...(fingerprints ? { fingerprints } : {}), ...(probe ? { probe } : {}) },
    base,
  );
}

/** What a loader prints when the worker cannot execute the target's programs at all. */
const LOADER_CANNOT_RUN = /exec format error|executable file not found|no such file or directory: unknown/i;

/**
 * Compares the stored artifact's package fingerprints with the host binary's: plugin.Open
 * refuses the artifact exactly when a package both link differs.
 */
function checkFingerprints(host: HostFingerprints, bytes: Buffer, log: LogSink, release?: string): FingerprintCheck & { message: string } {
  let plugin: PackageFingerprints = {};
  let order = new Map<string, number>();
  try {
    plugin = readPackageFingerprints(bytes);
    order = readPackageOrder(bytes);
  } catch (err) {
    log.note(`verify: the artifact's package fingerprints cannot be read: ${(err as Error).message}`);
  }
  const { compared, differing } = compareFingerprints(host.fingerprints, plugin, order);
  const against = `${release ? `host release ${release}'s executable` : 'the host binary'} ${host.sha256.slice(0, 12)} (go${host.go})`;
  const std = stdOnlyNote(differing, host.go);
  const message = differing.length
    ? `plugin was built with a different version of package ${differing[0]} (against ${against}: ${differing.length} of ${compared} shared packages differ: ${differing.join(', ')})${std ? `; ${std}` : ''}`
    : compared
      ? `all ${compared} packages shared with ${against} have the same fingerprints`
      : // Every plugin links the runtime, and so does every host: nothing compared means nothing could be read.
        `no package fingerprints of the artifact could be compared with ${against}`;
  log.note(`verify: ${message}`);
  return {
    hostBinary: host.sha256,
    go: host.go,
    compared,
    differing,
    status: differing.length || !compared ? 'failed' : 'passed',
    message,
  };
}

async function readAll(stream: NodeJS.ReadableStream, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > max) throw new PlugforgeError('artifact_too_large', `The artifact is larger than ${max} bytes.`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/**
 * The verification as recorded. `method` is the check that decided: the one that failed,
 * or else the strongest that passed (fingerprints over the probe over the ELF header).
 */
function verifyResult(
  status: VerifyResult['status'],
  message: string,
  checks: { fingerprints?: FingerprintCheck; probe?: ProbeCheck },
  /** The header check every artifact gets: ELF's, or an executable's Mach-O or PE header. */
  base: 'elf' | 'header' = 'elf',
): VerifyResult {
  const ran = (c?: { status?: string }) => c?.status === 'passed' || c?.status === 'failed';
  const method =
    status === 'failed'
      ? checks.fingerprints?.status === 'failed'
        ? 'fingerprints'
        : checks.probe
          ? 'probe'
          : base
      : ran(checks.fingerprints)
        ? 'fingerprints'
        : ran(checks.probe)
          ? 'probe'
          : base;
  const { fingerprints } = checks;
  return {
    status,
    message,
    method,
    ...(fingerprints
      ? {
          fingerprints: {
            hostBinary: fingerprints.hostBinary,
            go: fingerprints.go,
            compared: fingerprints.compared,
            differing: fingerprints.differing,
          },
        }
      : {}),
    ...(checks.probe ? { probe: checks.probe } : {}),
  };
}

/**
 * What Go, gcc and the shell print when fork or thread creation fails with EAGAIN, which in
 * a build container means its pids limit: told apart so such a build does not read as a
 * compile error (the Go runtime's answer is a crash dump).
 */
const PIDS_EXHAUSTED = /failed to create new OS thread|fatal error: newosproc|resource temporarily unavailable|cannot fork/i;

/** Passes the container's output on to the log, noting whether it shows the pids limit being hit. */
class PidsLimitWatch extends Writable {
  hit = false;
  private carry = '';

  constructor(private readonly log: LogSink) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    // A match may straddle two chunks: keep the end of the previous one.
    const text = this.carry + chunk.toString('latin1');
    if (!this.hit && PIDS_EXHAUSTED.test(text)) this.hit = true;
    this.carry = text.slice(-64);
    this.log.write(chunk, done);
  }

  // The log stays open: the loading probe writes to it after the build container has ended.
  // Callers drain it (LogSink.drain) when they are done.
  override _final(done: (err?: Error | null) => void): void {
    done();
  }
}

function timeoutError(spec: ContainerSpec): PlugforgeError {
  return new PlugforgeError('timeout', `The build did not finish within ${spec.limits.timeoutMs / 1000} s and was killed.`);
}

function failed(log: LogSink, error: TargetError): TargetOutcome {
  log.note(`failed: ${error.code}`);
  return { status: 'failed', error };
}
