import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostileElf } from './support/hostile-elf.js';
import { listToolchainImages, resolveGoVersion } from '../src/images/image-catalog.js';
import { DockerImageEngine } from '../src/runtime/docker-image-engine.js';
import { requireDocker, TEST_GO } from './support/env.js';
import { eventually } from './support/eventually.js';
import { startServe, watchHealth, type ServeProcess } from './support/serve-process.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

/**
 * One tenant's host description against `plugforge serve` as a process: each hostile one is
 * refused (4xx, a code, a sentence) within a second, while a second client's /healthz keeps
 * answering within 100 ms, so the API's event loop was never held (docs/architecture.md,
 * "Host matching"). And a plugin that prints the probe's report itself cannot pass for one
 * that exports what its host looks up.
 */
let serve: ServeProcess;
let source: Buffer;

beforeAll(async () => {
  // Every build here is meant to run: no reuse of an earlier identical one.
  serve = await startServe({ PLUGFORGE_REUSE: 'off' });
  source = await tarOf(GOTIFY_PLUGIN, { gzip: true });
}, 120_000);

afterAll(async () => {
  await serve?.stop();
});

/**
 * POST /v1/builds with the plugin source and one hostBinary part, timed, while /healthz is
 * watched. The hostile tenant is curl, a process of its own: pushing 50 MB from this
 * process would delay its own /healthz client and blur what the server's loop did.
 */
async function submitWatched(
  hostBinary: Buffer,
): Promise<{ status: number; body: any; ms: number; healthMs: number; healthCount: number; healthFailures: number; loopLagMs: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-hostile-'));
  await writeFile(path.join(dir, 'source.tar.gz'), source);
  await writeFile(path.join(dir, 'host'), hostBinary);
  const watch = watchHealth(serve.port);
  // The watch is answered before the request starts, and once more after it ends.
  await eventually(() => watch.answered() > 0, { intervalMs: 10, message: 'a first /healthz answer' });
  // Reading the metrics starts the event loop's delay histogram anew (prom-client resets it).
  await serve.api.get('/metrics');
  const started = performance.now();
  const curl = await new Promise<{ out: string; code: number | null }>((resolve) => {
    let out = '';
    const child = spawn(
      'curl',
      [
        '-sS',
        '--max-time',
        '15',
        '-F',
        'targets=linux-amd64',
        '-F',
        'source=@source.tar.gz',
        '-F',
        'hostBinary=@host',
        '-w',
        '\n%{http_code}',
        `${serve.url}/v1/builds`,
      ],
      { cwd: dir },
    );
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ out, code }));
  });
  const ms = performance.now() - started;
  const answeredBy = watch.answered();
  await eventually(() => watch.answered() > answeredBy, { intervalMs: 10, message: 'a /healthz answer after the request' });
  const health = await watch.stop();
  const loopLagMs = Number(/^plugforge_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec((await serve.api.get('/metrics')).text)?.[1]) * 1000;
  await rm(dir, { recursive: true, force: true });
  const lines = curl.out.trimEnd().split('\n');
  const status = Number(lines.pop());
  let body: any;
  try {
    body = JSON.parse(lines.join('\n'));
  } catch {
    body = { curl: curl.code, out: curl.out.slice(0, 300) };
  }
  return { status, body, ms, healthMs: health.maxMs, healthCount: health.count, healthFailures: health.failures, loopLagMs };
}

function expectRefusedQuickly(r: Awaited<ReturnType<typeof submitWatched>>, code: string | RegExp): void {
  const said = JSON.stringify({ ...r, body: r.body });
  expect(r.status, said).toBeGreaterThanOrEqual(400);
  expect(r.status, said).toBeLessThan(500);
  expect(r.body.error?.code, said).toMatch(code);
  expect(r.body.error?.message, said).toMatch(/\w+ \w+.*\./);
  expect(r.ms, said).toBeLessThan(1000);
  // Answered before the request and again after it (submitWatched waits for both), none failed.
  expect(r.healthCount, said).toBeGreaterThanOrEqual(2);
  expect(r.healthFailures, said).toBe(0);
  expect(r.healthMs, said).toBeLessThan(100);
  // The server's own measure of the same (prom-client's event-loop delay histogram).
  expect(r.loopLagMs, said).toBeLessThan(100);
  expect(serve.alive()).toBe(true);
}

/** `go version -m` text: a first line, then `lines` dep lines whose path and version are invalid. */
function invalidDepText(bytes: number): Buffer {
  const head = '/usr/bin/host: go1.22.12\n\tpath\texample.com/host\n\tmod\texample.com/host\t(devel)\t\n';
  const line = '\tdep\t!\tv\n';
  return Buffer.from(head + line.repeat(Math.floor((bytes - head.length) / line.length)));
}

describe('a host description that would stall the API', () => {
  it('refuses 16 MiB of invalid dep lines at once, before anything is parsed', async () => {
    const r = await submitWatched(invalidDepText(16 * 1024 * 1024));
    expectRefusedQuickly(r, 'host_too_large');
    expect(r.status).toBe(413);
  }, 60_000);

  it('refuses a text of the allowed size made of invalid dep lines, not one note each', async () => {
    const r = await submitWatched(invalidDepText(1000 * 1024));
    expectRefusedQuickly(r, /^host_buildinfo_(invalid|too_large)$/);
  }, 60_000);

  it('refuses an ELF of 65,536 section headers that all name one 48 MB symbol table', async () => {
    const elf = hostileElf({ sections: 65_536, symbols: 2_000_000, segments: 1 });
    const r = await submitWatched(elf);
    expectRefusedQuickly(r, 'host_binary_invalid');
  }, 120_000);

  it('refuses an ELF of 65,535 program headers in front of the one that maps its symbols', async () => {
    const elf = hostileElf({ sections: 5, symbols: 100_000, segments: 65_535 });
    const r = await submitWatched(elf);
    expectRefusedQuickly(r, 'host_binary_invalid');
  }, 120_000);

  it('refuses an ELF whose one dynamic symbol table holds 2 million package fingerprints', async () => {
    const elf = hostileElf({ sections: 5, symbols: 2_000_000, segments: 1 });
    const r = await submitWatched(elf);
    expectRefusedQuickly(r, 'host_binary_invalid');
  }, 120_000);
});

/** A plugin with none of gotify's symbols whose init prints the probe's success line and exits 0. */
const FAKE_REPORT_PLUGIN: Record<string, string> = {
  'go.mod': 'module example.com/fake-report\n\ngo 1.22\n',
  'plugin.go': `package main

import (
	"fmt"
	"os"
)

func init() {
	fmt.Println(\`{"result":"loaded"}\`)
	os.Exit(0)
}

func main() {}
`,
};

describe('a plugin that reports its own load', () => {
  it('fails verification when it lacks the symbols of its host profile, whatever its init prints', async () => {
    // The amd64 image alone: this needs no emulator and no other target's image.
    const go = resolveGoVersion(await listToolchainImages(new DockerImageEngine(await requireDocker()), 'plugforge/build'), TEST_GO, [
      'linux-amd64',
    ]);
    const query = `targets=linux-amd64&host=gotify&go=${go}`;
    const [fake, real] = await Promise.all([
      serve.api.submit(await tarOf(FAKE_REPORT_PLUGIN, { gzip: true }), query),
      serve.api.submit(source, query),
    ]);
    expect(fake.status, fake.text).toBe(202);
    expect(real.status, real.text).toBe(202);
    const faked = await serve.api.waitFor(fake.body.id, undefined, 600_000);
    const target = faked.targets['linux-amd64'];
    expect(faked.status, JSON.stringify(target)).toBe('failed');
    expect(target.error.code).toBe('symbol_missing');
    expect(target.error.message).toContain('GetGotifyPluginInfo, NewGotifyPluginInstance, which the plugin does not export');
    expect(target.verify).toMatchObject({ status: 'failed', method: 'elf' });
    // A real gotify plugin passes the same check.
    const built = await serve.api.waitFor(real.body.id, undefined, 600_000);
    expect(built.status, JSON.stringify(built.targets)).toBe('succeeded');
    expect(built.targets['linux-amd64'].verify.message).toContain(
      'symbols GetGotifyPluginInfo, NewGotifyPluginInstance exported (dynamic symbol table)',
    );
  }, 900_000);
});
