import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { TARGET_IDS, TARGETS } from '../src/contract/targets.js';
import { readElfHeader } from '../src/verify/elf-header.js';
import { containersLeft, requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { BROKEN_PLUGIN, GOTIFY_PLUGIN, slowPlugin, VENDORED_PLUGIN } from './support/fixtures.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';
import { eventually } from './support/eventually.js';

const run = promisify(execFile);

/** The service end to end: real Redis, real Docker, real Go toolchains, real ELF files. */
let redis: Redis;
let docker: Docker;
let service: RunningService;
let api: ApiClient;
let go = '';

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  // Images on demand off: this file checks the refusal of a release without images (test/images-on-demand.test.ts the rest).
  service = await startService('serve', await testConfig({ PLUGFORGE_IMAGES_ON_DEMAND: '0' }));
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

/** Containers of a build; with a role, only those (build: the build containers, not their disks' holders). */
async function containersOf(buildId: string, role?: string) {
  return docker.listContainers({
    all: true,
    filters: JSON.stringify({ label: [`org.plugforge.build=${buildId}`, ...(role ? [`org.plugforge.role=${role}`] : [])] }),
  });
}

describe('a gotify-style plugin for all four targets', () => {
  let doc: any;

  beforeAll(async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'go=1.22&host=gotify');
    expect(res.status).toBe(202);
    expect(res.body.go).toBe(go);
    expect(res.body.goRequested).toBe('1.22');
    doc = await api.waitFor(res.body.id);
  });

  it('succeeds with one artifact per target, named <name>-<target>.so', () => {
    expect(doc.status).toBe('succeeded');
    expect(doc.finishedAt).toBeTruthy();
    for (const t of TARGET_IDS) {
      expect(doc.targets[t].status).toBe('succeeded');
      expect(doc.targets[t].artifact.name).toBe(`gotify-hello-${t}.so`);
      expect(doc.targets[t].image).toBe(`plugforge/build:${go}-${t}`);
      expect(doc.targets[t].verify.status).toBe('passed');
    }
  });

  it('serves each artifact with the sha256 of the build document, and the ELF machine of its target', async () => {
    for (const t of TARGET_IDS) {
      const res = await api.bytes(`/v1/builds/${doc.id}/artifacts/${t}`);
      expect(res.status).toBe(200);
      const sha = createHash('sha256').update(res.bytes).digest('hex');
      expect(sha).toBe(doc.targets[t].artifact.sha256);
      expect(res.headers.get('x-plugforge-sha256')).toBe(sha);
      expect(res.bytes.length).toBe(doc.targets[t].artifact.size);
      const elf = readElfHeader(res.bytes);
      expect(elf, t).toMatchObject({ elfClass: TARGETS[t].elfClass, machine: TARGETS[t].elfMachine, type: 3 });
    }
  });

  it('bundles all four with SHA256SUMS that sha256sum -c accepts, and build.json', async () => {
    const res = await api.bytes(`/v1/builds/${doc.id}/artifacts.tar.gz`);
    expect(res.status).toBe(200);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-bundle-'));
    await writeFile(path.join(dir, 'bundle.tar.gz'), res.bytes);
    await run('tar', ['-xzf', 'bundle.tar.gz'], { cwd: dir });
    const files = (await readdir(dir)).filter((f) => f !== 'bundle.tar.gz').sort();
    // Each artifact with its signature and SBOM, and the build's signed provenance (docs/provenance.md, "Verify what you downloaded").
    expect(files).toEqual(
      [
        'SHA256SUMS',
        'build.json',
        'provenance.intoto.jsonl',
        ...TARGET_IDS.flatMap((t) => [`gotify-hello-${t}.so`, `gotify-hello-${t}.so.sig`, `gotify-hello-${t}.so.cdx.json`]),
      ].sort(),
    );
    const check = await run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir });
    expect(check.stdout.trim().split('\n')).toHaveLength(4);
    expect(check.stdout).not.toContain('FAILED');
    expect(JSON.parse(await readFile(path.join(dir, 'build.json'), 'utf8')).id).toBe(doc.id);
  });

  it('loads every artifact in a probe host under its own architecture, with the gotify symbols', async () => {
    // 386: natively where this kernel runs 32-bit x86, else under qemu-i386; the worker says which.
    const ready = (await api.get('/readyz')).body;
    expect(['natively (i686 loader)', 'qemu-i386-static']).toContain(ready.load['linux-386']);
    const how: Record<string, string> = {
      'linux-amd64': 'natively',
      'linux-arm-7': 'qemu-arm-static',
      'linux-arm64': 'qemu-aarch64-static',
      'linux-386': ready.load['linux-386'],
    };
    for (const t of TARGET_IDS) {
      expect(doc.targets[t].verify).toMatchObject({ status: 'passed', method: 'probe', probe: { status: 'passed', how: how[t] } });
      expect(doc.targets[t].verify.message).toContain(
        'symbols GetGotifyPluginInfo, NewGotifyPluginInstance exported (dynamic symbol table)',
      );
      expect(doc.targets[t].verify.message).toContain(`loaded by plugin.Open ${how[t]}`);
    }
    const logs = await api.get(`/v1/builds/${doc.id}/logs?target=linux-arm64`);
    // No host to match: the probe the image carries, not one compiled for this build.
    expect(logs.text).toContain('probe: prebuilt in the image');
    expect(logs.text).toContain(
      "verify: loading gotify-hello-linux-arm64.so into a probe host built with the same toolchain and the host's settings (no -trimpath, no tags), run qemu-aarch64-static",
    );
  });

  it('keeps the logs readable after the build, per target and all together', async () => {
    const all = await api.get(`/v1/builds/${doc.id}/logs`);
    expect(all.status).toBe(200);
    for (const t of TARGET_IDS) expect(all.text).toContain(`[${t}] [plugforge] built gotify-hello-${t}.so`);
    const one = await api.get(`/v1/builds/${doc.id}/logs?target=linux-arm64`);
    expect(one.text).toContain('built gotify-hello-linux-arm64.so');
    expect(one.text).not.toContain('linux-386');
  });

  it('leaves no container behind', async () => {
    expect(await containersLeft(docker, [`org.plugforge.build=${doc.id}`])).toEqual([]);
  });
});

describe('other plugins and failures', () => {
  it('builds a vendored plugin offline', async () => {
    const res = await api.submit(await tarOf(VENDORED_PLUGIN, { gzip: true }), 'targets=linux-amd64,linux-arm-7');
    expect(res.status).toBe(202);
    expect(res.body.source.vendored).toBe(true);
    const doc = await api.waitFor(res.body.id);
    expect(doc.status).toBe('succeeded');
    expect(doc.targets['linux-arm-7'].artifact.name).toBe('vendored-linux-arm-7.so');
    const logs = await api.get(`/v1/builds/${res.body.id}/logs?target=linux-amd64`);
    expect(logs.text).toContain('-mod=vendor');
  });

  it('fails a gotify plugin that lacks NewGotifyPluginInstance, naming the symbol, and still offers the artifact', async () => {
    const files = {
      ...GOTIFY_PLUGIN,
      'plugin.go': GOTIFY_PLUGIN['plugin.go']!.replace(/\/\/ NewGotifyPluginInstance.*\nfunc NewGotifyPluginInstance.*\n/, ''),
    };
    expect(files['plugin.go']).not.toContain('NewGotifyPluginInstance');
    const res = await api.submit(await tarOf(files, { gzip: true }), 'host=gotify&targets=linux-amd64,linux-arm-7');
    const doc = await api.waitFor(res.body.id);
    expect(doc.status).toBe('failed');
    for (const t of ['linux-amd64', 'linux-arm-7']) {
      expect(doc.targets[t].error.code).toBe('symbol_missing');
      expect(doc.targets[t].error.message).toContain('NewGotifyPluginInstance');
      expect(doc.targets[t].verify.status).toBe('failed');
      expect(doc.targets[t].artifact.name).toBe(`gotify-hello-${t}.so`);
      const download = await api.bytes(`/v1/builds/${res.body.id}/artifacts/${t}`);
      expect(download.status).toBe(200);
      expect(download.headers.get('x-plugforge-verify')).toBe('failed');
    }
    expect(await containersLeft(docker, [`org.plugforge.build=${res.body.id}`])).toEqual([]);
  });

  it('ends a build with a compile error as failed, with the compiler message in the target error', async () => {
    const res = await api.submit(await tarOf(BROKEN_PLUGIN, { gzip: true }), 'targets=linux-386');
    const doc = await api.waitFor(res.body.id);
    expect(doc.status).toBe('failed');
    const err = doc.targets['linux-386'].error;
    expect(err.code).toBe('compile_failed');
    expect(err.message).toMatch(/plugin\.go:3:\d+: cannot use "not a number"/);
    expect(await containersLeft(docker, [`org.plugforge.build=${res.body.id}`])).toEqual([]);
  });

  it('cancels a running build: its container is killed and removed, the build ends canceled', async () => {
    const res = await api.submit(await tarOf(slowPlugin(), { gzip: true }), 'targets=linux-amd64');
    const id = res.body.id;
    await api.waitUntil(id, (d) => d.targets['linux-amd64'].status === 'running', 60_000);
    await eventually(async () => (await containersOf(id, 'build')).length, { timeoutMs: 30_000, message: 'the build container' });
    expect((await containersOf(id, 'build')).length).toBe(1);
    const del = await api.request('DELETE', `/v1/builds/${id}`);
    expect(del.status).toBe(202);
    const doc = await api.waitFor(id);
    expect(doc.status).toBe('canceled');
    expect(doc.targets['linux-amd64'].status).toBe('canceled');
    // containersLeft polls the same label: 35 s, as the two waits it replaces.
    expect(await containersLeft(docker, [`org.plugforge.build=${id}`], 35_000)).toEqual([]);
    const logs = await api.get(`/v1/builds/${id}/logs`);
    expect(logs.text).toContain('canceled');
  });

  it('refuses an unknown target with 400 listing the valid ones', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64,linux-mips');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('unknown_target');
    expect(res.body.error.message).toContain('linux-amd64, linux-arm-7, linux-arm64, linux-386');
  });

  it('refuses a Go version without images with 422, listing what is available and how to build it', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'go=1.21');
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('go_version_unavailable');
    expect(res.body.error.message).toContain(go);
    expect(res.body.error.message).toContain('plugforge images build --go 1.21');
  });

  it('refuses a corrupt upload with 400 saying what is wrong', async () => {
    const good = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    const cases: [Buffer, string][] = [
      [Buffer.from('this is not an archive'), 'archive_not_gzip'],
      [good.subarray(0, Math.floor(good.length / 2)), 'archive_truncated'],
      [await tarOf({ 'main.go': 'package main\n' }, { gzip: true }), 'archive_no_go_mod'],
    ];
    for (const [body, code] of cases) {
      const res = await api.submit(body);
      expect(res.status, code).toBe(400);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message.length).toBeGreaterThan(20);
    }
  });

  it('streams logs with follow=1 until the build ends', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64&name=followed');
    const followed = await api.get(`/v1/builds/${res.body.id}/logs?follow=1`);
    expect(followed.text).toContain('[linux-amd64] [plugforge] built followed-linux-amd64.so');
    expect((await api.get(`/v1/builds/${res.body.id}`)).body.status).toBe('succeeded');
  });

  it('accepts multipart/form-data with a source part and option fields', async () => {
    const form = new FormData();
    form.set('go', '1.22');
    form.set('targets', 'linux-arm64');
    form.set('name', 'multi');
    form.set('source', new Blob([await tarOf(GOTIFY_PLUGIN, { gzip: true })]), 'plugin.tar.gz');
    const res = await fetch(`${api.base}/v1/builds`, { method: 'POST', body: form });
    const body = (await res.json()) as any;
    expect(res.status, JSON.stringify(body)).toBe(202);
    expect(body.targets).toEqual({ 'linux-arm64': expect.objectContaining({ status: 'queued' }) });
    const doc = await api.waitFor(body.id);
    expect(doc.targets['linux-arm64'].artifact.name).toBe('multi-linux-arm64.so');
  });

  it('follows the logs as Server-Sent Events when asked for text/event-stream', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-386&name=sse');
    const events = await api.request('GET', `/v1/builds/${res.body.id}/logs?follow=1`, undefined, { Accept: 'text/event-stream' });
    expect(events.headers.get('content-type')).toContain('text/event-stream');
    expect(events.text).toContain('event: log\ndata: [linux-386] [plugforge] built sse-linux-386.so');
    // Each target's end is told as it happens, before the build's.
    expect(events.text).toMatch(
      /event: target\ndata: \{"target":"linux-386","status":"succeeded"\}\n\n(.*\n)*event: end\ndata: \{"status":"succeeded"\}\n\n$/,
    );
  });

  it('lists the toolchains whose images are present', async () => {
    const res = await api.get('/v1/toolchains');
    expect(res.status).toBe(200);
    const tc = res.body.toolchains.find((t: any) => t.go === go);
    expect(tc.targets).toEqual([...TARGET_IDS]);
    // The test images are Debian's Go (scripts/test builds them with images build --go 1.22).
    expect(tc.source).toBe('debian');
    const ready = await api.get('/readyz');
    expect(ready.body).toMatchObject({ status: 'ready', redis: 'ok' });
  });
});
