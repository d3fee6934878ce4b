import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { loadConfig } from '../src/config.js';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { FsBlobStore } from '../src/store/fs-blob-store.js';
import { plan, planVerify } from '../src/worker/plan.js';
import { runTargetBuild, type HostFingerprints, type PluginExports } from '../src/worker/target-build.js';
import { FakeRuntime, fakeElf, readableOf, type FakeScript } from '../src/runtime/fake-runtime.js';
import { tarOf } from './support/source.js';

let store: FsBlobStore;
let sourceSha = '';

beforeAll(async () => {
  store = new FsBlobStore(await mkdtemp(path.join(os.tmpdir(), 'plugforge-tb-')));
  await store.init();
  sourceSha = (await store.put(readableOf(await tarOf({ 'go.mod': 'module example.com/x\n', 'sub/': '', 'sub/x.go': 'package main\n' }))))
    .sha256;
});

const record = (): BuildRecord => ({
  id: 'tb1',
  tenant: 'public',
  createdAt: new Date().toISOString(),
  go: '1.22.12',
  goRequested: '1.22',
  name: 'x',
  mode: 'plugin',
  host: 'generic',
  targetIds: ['linux-arm64'],
  source: { sha256: sourceSha, size: 1, module: 'example.com/x', vendored: false, requirements: false },
});

async function run(
  script: FakeScript,
  options: {
    timeoutSeconds?: string;
    maxLogKb?: string;
    maxArtifactMb?: string;
    signal?: AbortSignal;
    probe?: FakeScript;
    symbols?: string[];
    host?: HostFingerprints;
    exports?: PluginExports;
  } = {},
) {
  const config = loadConfig({
    PLUGFORGE_BUILD_TIMEOUT_SECONDS: options.timeoutSeconds ?? '60',
    PLUGFORGE_MAX_LOG_KB: options.maxLogKb ?? '1024',
    PLUGFORGE_MAX_ARTIFACT_MB: options.maxArtifactMb ?? '10',
  });
  const runtime = new FakeRuntime((s) => (s.kind === 'verify' ? (options.probe ?? {}) : script));
  const logs: string[] = [];
  const spec = plan(record(), 'linux-arm64', config, { workerId: 'w', instanceId: 'i' });
  const pipeline = [
    spec,
    ...(options.probe
      ? [
          planVerify(spec, options.symbols ?? [], {
            argv: ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'],
            how: 'qemu-aarch64-static',
          }),
        ]
      : []),
  ];
  const job = {
    sourceSha256: sourceSha,
    mode: 'plugin' as const,
    ...(options.host ? { host: options.host } : {}),
    ...(options.exports ? { exports: options.exports } : {}),
  };
  const outcome = runTargetBuild(
    { runtime, store, appendLog: async (t) => void logs.push(t) },
    pipeline,
    job,
    options.signal ?? new AbortController().signal,
  );
  return { runtime, logs, outcome };
}

const arm64 = fakeElf(2, 183);

describe('runTargetBuild (orchestration, fake runtime)', () => {
  it('stores a good artifact, verifies it and removes the container', async () => {
    const { runtime, outcome, logs } = await run({ output: 'compiling\n', artifact: arm64 });
    const result = await outcome;
    expect(result.status).toBe('succeeded');
    expect(result.artifact).toMatchObject({ name: 'x-linux-arm64.so', size: arm64.length });
    expect(await store.has(result.artifact!.sha256)).toBe(true);
    expect(result.verify?.status).toBe('passed');
    expect(runtime.alive()).toEqual([]);
    expect(logs.join('')).toContain('compiling');
  });

  it('puts the source under src/ with out/, tmp/, home/, all owned by the build user', async () => {
    const { runtime, outcome } = await run({ artifact: arm64 });
    await outcome;
    const entries = [...runtime.containers.values()][0]!.putEntries;
    expect(entries.map((e) => e.name)).toEqual([
      'src/',
      'out/',
      'tmp/',
      'home/',
      'src/go.mod',
      'src/sub/',
      'src/sub/x.go',
      'src/.plugforge-probe/',
      'src/.plugforge-probe/main.go',
      'src/.plugforge-probe/imports.go',
      'src/.plugforge-probe/host-modules.txt',
    ]);
    expect(new Set(entries.map((e) => `${e.uid}:${e.gid}`))).toEqual(new Set(['65532:65532']));
  });

  it('reports a compile error with the compiler output, as final', async () => {
    const { runtime, outcome } = await run({
      output: './main.go:3:1: syntax error: non-declaration statement outside function body\n',
      exitCode: 1,
    });
    const result = await outcome;
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('compile_failed');
    expect(result.error?.message).toContain('./main.go:3:1: syntax error');
    expect(runtime.alive()).toEqual([]);
  });

  it('kills a build that passes its deadline and says so', async () => {
    const { runtime, outcome } = await run({ runMs: 10_000 }, { timeoutSeconds: '1' });
    const result = await outcome;
    expect(result).toMatchObject({ status: 'failed', error: { code: 'timeout' } });
    expect(runtime.events).toContain('kill tb1-linux-arm64');
    expect(runtime.alive()).toEqual([]);
  });

  it('stops on cancel, and removes the container', async () => {
    const ac = new AbortController();
    const { runtime, outcome } = await run({ runMs: 10_000 }, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('canceled')), 100);
    const result = await outcome;
    expect(result.status).toBe('canceled');
    expect(runtime.alive()).toEqual([]);
  });

  it('retries a loading probe killed from outside (exit 137, not out of memory: an engine that stopped), its containers removed', async () => {
    const { outcome, runtime } = await run({ artifact: arm64 }, { probe: { stdout: '', exitCode: 137 } });
    await expect(outcome).rejects.toMatchObject({ code: 'container_killed', retryable: true });
    expect(runtime.alive()).toEqual([]);
  });

  it('says disk_limit for a build whose disk was full, or that reports ENOSPC under /work or /tmp, naming the cap', async () => {
    const full = await (await run({ exitCode: 1, full: ['work'], output: 'link: write failed\n' })).outcome;
    expect(full.error).toMatchObject({ code: 'disk_limit' });
    expect(full.error?.message).toMatch(/^The build filled its \/work \(1024 MiB, PLUGFORGE_WORK_DISK_MB\) and failed:/);
    const said = await (
      await run({
        exitCode: 1,
        output: "../ccr9BiBM.s: Fatal error: can't fill 256 bytes in section .data of $WORK/b001/_x002.o: 'No space left on device'\n",
      })
    ).outcome;
    expect(said.error?.message).toMatch(/filled its \/work \(1024 MiB/);
    const tmp = await (await run({ exitCode: 1, output: 'write /tmp/x: no space left on device\n' })).outcome;
    expect(tmp.error?.message).toMatch(/filled its \/tmp \(256 MiB, PLUGFORGE_TMP_DISK_MB\)/);
    // The cache volume lives on the worker's own disk: ENOSPC there is not a cap.
    const cache = await (await run({ exitCode: 1, output: 'write /cache/0a/x-d: no space left on device\n' })).outcome;
    expect(cache.error?.code).toBe('compile_failed');
  });

  it('reports a container killed for memory as out_of_memory', async () => {
    const { outcome } = await run({ exitCode: 137, oomKilled: true });
    expect((await outcome).error?.code).toBe('out_of_memory');
  });

  it('refuses an artifact of the wrong architecture', async () => {
    const { outcome } = await run({ artifact: fakeElf(2, 62) });
    const result = await outcome;
    expect(result).toMatchObject({ status: 'failed', error: { code: 'verify_failed' }, verify: { status: 'failed' } });
    expect(result.verify?.message).toContain('expected 183 (AArch64)');
  });

  it('refuses an artifact that is a link, or more than one file, or too big', async () => {
    expect((await (await run({ artifact: 'symlink' })).outcome).error?.code).toBe('artifact_invalid');
    expect((await (await run({ artifact: 'two-files' })).outcome).error?.code).toBe('artifact_invalid');
    const big = Buffer.concat([arm64, Buffer.alloc(2 * 1024 * 1024)]);
    expect((await (await run({ artifact: big }, { maxArtifactMb: '1' })).outcome).error?.code).toBe('artifact_too_large');
  });

  it('says when go build exited 0 but wrote nothing', async () => {
    expect((await (await run({ artifact: 'none' })).outcome).error?.code).toBe('artifact_missing');
  });

  it('rejects with a retryable error when the engine vanishes, and still removes the container', async () => {
    const gone = new PlugforgeError('docker_unavailable', 'The Docker engine is unreachable', { retryable: true });
    const { runtime, outcome } = await run({ waitError: gone });
    await expect(outcome).rejects.toMatchObject({ code: 'docker_unavailable', retryable: true });
    expect(runtime.alive()).toEqual([]);
    const early = await run({ createError: gone });
    await expect(early.outcome).rejects.toMatchObject({ code: 'docker_unavailable' });
  });

  it('keeps at most the configured log volume, and says it cut the rest', async () => {
    const { outcome, logs } = await run({ output: 'x'.repeat(5000), artifact: arm64 }, { maxLogKb: '1' });
    await outcome;
    const text = logs.join('');
    expect(text).toContain('output truncated after 1024 bytes');
    expect(text.replace(/\[plugforge\][^\n]*\n/g, '').length).toBeLessThan(1200);
  });

  it("fails a plugin whose dynamic symbol table lacks the profile's symbols before the probe runs, whatever the probe would print", async () => {
    const exports = { pluginPath: 'example.com/x', symbols: ['GetGotifyPluginInfo', 'NewGotifyPluginInstance'] };
    const { runtime, outcome, logs } = await run(
      { artifact: arm64 },
      { probe: { stdout: '{"result":"loaded"}\n' }, symbols: exports.symbols, exports },
    );
    const result = await outcome;
    expect(result.status).toBe('failed');
    expect(result.error?.code).toBe('symbol_missing');
    expect(result.verify).toMatchObject({ status: 'failed', method: 'elf' });
    expect(result.error?.message).toContain(
      'no example.com/x.GetGotifyPluginInfo, example.com/x.NewGotifyPluginInstance defined in its dynamic symbol table',
    );
    expect(logs.join('')).toContain('verify: the host looks up GetGotifyPluginInfo, NewGotifyPluginInstance');
    // The probe never ran: nothing it printed could count.
    expect(logs.join('')).not.toContain('verify: loading');
    expect(runtime.alive()).toEqual([]);
  });

  it("loads the artifact with the probe under qemu, in a second container on the build's disks, and passes", async () => {
    const { runtime, outcome } = await run(
      { artifact: arm64 },
      { probe: { stdout: '{"result":"loaded"}\n' }, symbols: ['GetGotifyPluginInfo'] },
    );
    const result = await outcome;
    expect(result.status).toBe('succeeded');
    expect(result.verify?.message).toContain('loaded by plugin.Open qemu-aarch64-static');
    const verify = [...runtime.containers.values()].find((c) => c.spec.kind === 'verify')!;
    expect(verify.spec.cmd).toEqual([
      'qemu-aarch64-static',
      '-L',
      '/usr/aarch64-linux-gnu',
      '/work/tmp/probe',
      '/work/out/x-linux-arm64.so',
      'GetGotifyPluginInfo',
    ]);
    expect(verify.spec.cacheVolume).toBeUndefined();
    // Nothing put in: the build left the artifact and the probe on the disks the probe runs on.
    const build = [...runtime.containers.values()].find((c) => c.spec.kind === 'build')!;
    expect(verify.putEntries).toEqual([]);
    expect(verify.disks).toEqual(build.disks);
    // The build's container was gone before the probe's started.
    expect(runtime.events.indexOf(`destroy ${build.spec.jobId}`)).toBeLessThan(
      runtime.events.indexOf(`start ${verify.spec.jobId}`, runtime.events.indexOf(`start ${build.spec.jobId}`) + 1),
    );
    expect(runtime.alive()).toEqual([]);
  });

  it('fails naming the symbol the host would miss, and keeps the artifact', async () => {
    const { outcome } = await run(
      { artifact: arm64 },
      {
        probe: { stdout: '{"result":"symbol_missing","symbol":"NewGotifyPluginInstance","message":"not found"}\n', exitCode: 4 },
        symbols: ['NewGotifyPluginInstance'],
      },
    );
    const result = await outcome;
    expect(result).toMatchObject({ status: 'failed', error: { code: 'symbol_missing' }, verify: { status: 'failed', method: 'probe' } });
    expect(result.error?.message).toContain('NewGotifyPluginInstance');
    expect(result.artifact?.name).toBe('x-linux-arm64.so');
  });

  it("reports plugin.Open's own refusal", async () => {
    const message = 'plugin.Open("/work/out/x-linux-arm64.so"): plugin was built with a different version of package internal/goarch';
    const { outcome } = await run(
      { artifact: arm64 },
      { probe: { stdout: `${JSON.stringify({ result: 'open_failed', message })}\n`, exitCode: 3 } },
    );
    const result = await outcome;
    expect(result.error?.code).toBe('plugin_load_failed');
    expect(result.verify?.message).toContain('plugin was built with a different version of package internal/goarch');
  });

  it('with a host binary: an artifact sharing no package fingerprint with it fails, never passes, and the probe is not run', async () => {
    const host = { sha256: 'ab'.repeat(32), go: '1.22.12', fingerprints: { runtime: '0011223344556677' } };
    const { outcome, runtime } = await run({ artifact: arm64 }, { probe: { stdout: '{"result":"loaded"}\n' }, host });
    const result = await outcome;
    expect(result).toMatchObject({
      status: 'failed',
      error: { code: 'verify_failed' },
      verify: { status: 'failed', method: 'fingerprints', fingerprints: { compared: 0, differing: [] } },
    });
    expect(result.verify?.message).toContain(
      'no package fingerprints of the artifact could be compared with the host binary abababababab (go1.22.12)',
    );
    // The probe's container was made while the build compiled, never started, and removed.
    expect(runtime.events.filter((e) => e.startsWith('start'))).toHaveLength(1);
    expect(runtime.events.filter((e) => e.startsWith('destroy'))).toHaveLength(runtime.events.filter((e) => e.startsWith('create')).length);
  });

  it('gives the probe a deadline of its own: an init that never returns fails verification, the artifact kept', async () => {
    const { runtime, outcome } = await run({ artifact: arm64 }, { probe: { runMs: 10_000 }, timeoutSeconds: '1' });
    const result = await outcome;
    expect(result).toMatchObject({ status: 'failed', error: { code: 'timeout' }, verify: { status: 'failed' } });
    expect(result.verify?.message).toContain('loading the plugin did not finish within 1 s');
    expect(result.artifact?.name).toBe('x-linux-arm64.so');
    expect(runtime.events.filter((e) => e.startsWith('kill'))).toHaveLength(1);
    expect(runtime.alive()).toEqual([]);
  });
});
