import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { TARGET_IDS, TARGETS } from '../src/contract/targets.js';
import { readElfHeader } from '../src/verify/elf-header.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { ApiClient } from './support/http.js';
import { openGpg } from './support/gpg.js';
import { tarOf } from './support/source.js';

const run = promisify(execFile);

/**
 * Mattermost-style bundles (`GET /v1/builds/:id/bundle.tar.gz`) of a real exe build on
 * Docker for all four targets: plugin.json with server.executables filled in, the four
 * executables, and the assets the plugin ships. The amd64 executable is run here.
 */
const MANIFEST = {
  id: 'com.example.mmhello',
  name: 'MM Hello',
  version: '0.1.0',
  server: { executable: 'server/dist/plugin-linux-amd64' },
  webapp: { bundle_path: 'webapp/dist/main.js' },
};
const SERVER_PLUGIN: Record<string, string> = {
  'go.mod': 'module example.com/mmhello\n\ngo 1.22\n',
  'main.go': 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("mmhello server plugin started") }\n',
  'plugin.json': JSON.stringify(MANIFEST),
  'assets/icon.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>\n',
  'webapp/dist/main.js': 'console.log("mmhello");\n',
  'webapp/src/index.js': 'source the bundle leaves out\n',
  'README.md': 'not part of a bundle\n',
};

let redis: Redis;
let service: RunningService;
let api: ApiClient;

beforeAll(async () => {
  redis = await requireRedis();
  await requireImages(await requireDocker());
  service = await startService('serve', await testConfig());
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
}, 60_000);

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

async function build(files: Record<string, string>, query: string): Promise<any> {
  const res = await api.submit(await tarOf(files, { gzip: true }), query);
  expect(res.status, res.text).toBe(202);
  return api.waitFor(res.body.id, undefined, 300_000);
}

describe('Mattermost-style bundle of an exe build', () => {
  it('packs plugin.json with an executable per platform, the four executables and the shipped assets', async () => {
    const doc = await build(SERVER_PLUGIN, 'mode=exe');
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');

    const res = await api.bytes(`/v1/builds/${doc.id}/bundle.tar.gz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="com.example.mmhello-0.1.0.tar.gz"');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-bundle-'));
    await writeFile(path.join(dir, 'bundle.tar.gz'), res.bytes);
    const listing = (await run('tar', ['-tzf', 'bundle.tar.gz'], { cwd: dir })).stdout.trim().split('\n').sort();
    expect(listing).toEqual(
      [
        'com.example.mmhello/plugin.json',
        'com.example.mmhello/assets/icon.svg',
        'com.example.mmhello/webapp/dist/main.js',
        ...TARGET_IDS.map((t) => `com.example.mmhello/server/dist/mmhello-${t}`),
        // Each executable's signature and the build's signed provenance (docs/provenance.md, "Verify what you downloaded").
        ...TARGET_IDS.map((t) => `com.example.mmhello/server/dist/mmhello-${t}.sig`),
        'com.example.mmhello/server/dist/provenance.intoto.jsonl',
      ].sort(),
    );
    await run('tar', ['-xzf', 'bundle.tar.gz'], { cwd: dir });
    const root = path.join(dir, 'com.example.mmhello');

    const manifest = JSON.parse(await readFile(path.join(root, 'plugin.json'), 'utf8'));
    expect(manifest).toEqual({
      ...MANIFEST,
      server: {
        executables: {
          'linux-amd64': 'server/dist/mmhello-linux-amd64',
          'linux-arm': 'server/dist/mmhello-linux-arm-7',
          'linux-arm64': 'server/dist/mmhello-linux-arm64',
          'linux-386': 'server/dist/mmhello-linux-386',
        },
      },
    });
    for (const t of TARGET_IDS) {
      const file = path.join(root, manifest.server.executables[t === 'linux-arm-7' ? 'linux-arm' : t]);
      const bytes = await readFile(file);
      expect(readElfHeader(bytes), t).toMatchObject({ elfClass: TARGETS[t].elfClass, machine: TARGETS[t].elfMachine });
      expect((await stat(file)).mode & 0o777).toBe(0o755);
      // The same bytes as the artifact download.
      const artifact = await api.bytes(`/v1/builds/${doc.id}/artifacts/${t}`);
      expect(artifact.bytes.equals(bytes), t).toBe(true);
    }
    expect(await readFile(path.join(root, 'assets', 'icon.svg'), 'utf8')).toBe(SERVER_PLUGIN['assets/icon.svg']);
    expect((await readdir(root)).sort()).toEqual(['assets', 'plugin.json', 'server', 'webapp']);
    // The amd64 server executable runs on this (amd64) machine.
    expect((await run(path.join(root, 'server', 'dist', 'mmhello-linux-amd64'))).stdout).toBe('mmhello server plugin started\n');
  });

  it("signs the bundle as Mattermost verifies plugin bundles: gpg, given the installation's OpenPGP key, verifies it, and not after one byte changes", async () => {
    const doc = await build(SERVER_PLUGIN, 'mode=exe&targets=linux-amd64');
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    const [bundle, again, sig, key] = await Promise.all([
      api.bytes(`/v1/builds/${doc.id}/bundle.tar.gz`),
      api.bytes(`/v1/builds/${doc.id}/bundle.tar.gz`),
      api.bytes(`/v1/builds/${doc.id}/bundle.tar.gz.sig`),
      api.bytes('/v1/keys/openpgp'),
    ]);
    // The same bytes at every download: what makes one detached signature hold for all of them.
    expect(again.bytes.equals(bundle.bytes)).toBe(true);
    expect(sig.status).toBe(200);
    expect(sig.headers.get('content-disposition')).toBe('attachment; filename="com.example.mmhello-0.1.0.tar.gz.sig"');
    const fingerprint = key.headers.get('x-plugforge-openpgp-fingerprint') ?? '';
    expect(fingerprint).toMatch(/^[0-9A-F]{40}$/);
    const gpg = await openGpg();
    try {
      const files = { key: path.join(gpg.home, 'plugforge.asc'), bundle: path.join(gpg.home, 'bundle.tar.gz') };
      await writeFile(files.key, key.bytes);
      await writeFile(files.bundle, bundle.bytes);
      await writeFile(`${files.bundle}.sig`, sig.bytes);
      expect((await gpg.run('--import', files.key)).out).toContain(`IMPORT_OK 1 ${fingerprint}`);
      const good = await gpg.run('--verify', `${files.bundle}.sig`, files.bundle);
      expect(good.code, good.out).toBe(0);
      expect(good.out).toContain(`VALIDSIG ${fingerprint}`);
      const changed = Buffer.from(bundle.bytes);
      changed.writeUInt8(changed.readUInt8(100) ^ 1, 100);
      await writeFile(files.bundle, changed);
      const bad = await gpg.run('--verify', `${files.bundle}.sig`, files.bundle);
      expect(bad.code).not.toBe(0);
      expect(bad.out).toContain('BADSIG');
    } finally {
      await gpg.close();
    }
  });

  it("builds the starter template's layout: go.mod at the root, the main package in server/ with a sub-package (package=./server)", async () => {
    const template = {
      'go.mod': 'module example.com/mmtemplate\n\ngo 1.22\n',
      'plugin.json': JSON.stringify({ ...MANIFEST, id: 'com.example.mmtemplate' }),
      'server/plugin.go':
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/mmtemplate/server/command"\n)\n\nfunc main() { fmt.Println("template server plugin:", command.Name()) }\n',
      'server/command/command.go':
        'package command\n\n// Name is what the slash command is called.\nfunc Name() string { return "hello" }\n',
      'server/plugin_test.go': 'package main\n',
      'webapp/dist/main.js': 'console.log("template");\n',
    };
    const doc = await build(template, 'mode=exe&package=./server&targets=linux-amd64');
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    expect(doc.build.package).toBe('./server');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-template-'));
    const exe = path.join(dir, 'server');
    await writeFile(exe, (await api.bytes(`/v1/builds/${doc.id}/artifacts/linux-amd64`)).bytes, { mode: 0o755 });
    expect((await run(exe)).stdout).toBe('template server plugin: hello\n');

    // The root holds no package, a missing directory none, and a path outside the module is no package option at all.
    const source = await tarOf(template, { gzip: true });
    const { 'webapp/dist/main.js': _webapp, ...unbuilt } = template;
    const [root, missing, outside, noWebapp] = await Promise.all([
      api.submit(source, 'mode=exe&targets=linux-amd64'),
      api.submit(source, 'mode=exe&package=./webapp&targets=linux-amd64'),
      api.submit(source, 'mode=exe&package=../server&targets=linux-amd64'),
      // plugin.json names webapp/dist/main.js, which plugforge does not build (no npm).
      api.submit(await tarOf(unbuilt, { gzip: true }), 'mode=exe&package=./server&targets=linux-amd64'),
    ]);
    expect(noWebapp.status, noWebapp.text).toBe(422);
    expect(noWebapp.body.error).toMatchObject({
      code: 'webapp_bundle_missing',
      message: expect.stringContaining('Build the webapp first'),
    });
    expect(root.status, root.text).toBe(422);
    expect(root.body.error.code).toBe('package_not_found');
    expect(root.body.error.message).toContain('no Go package at . ');
    expect(root.body.error.message).toContain('./server');
    expect(missing.status).toBe(422);
    expect(missing.body.error).toMatchObject({ code: 'package_not_found', message: expect.stringContaining('./webapp') });
    expect(outside.status).toBe(400);
    expect(outside.body.error).toMatchObject({ code: 'invalid_option', message: expect.stringContaining('no "..", not absolute') });
  });

  it("builds the template's five platforms (targets=mattermost): each executable's header checked, the linux ones run, the bundle as make dist lays it out", async () => {
    const template = {
      'go.mod': 'module example.com/mmfive\n\ngo 1.22\n',
      'plugin.json': JSON.stringify({ ...MANIFEST, id: 'com.example.mmfive' }),
      'server/plugin.go': 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("mmfive handshake 1|1|tcp") }\n',
      'webapp/dist/main.js': 'console.log("five");\n',
    };
    // targets=mattermost alone: executables (mode=exe) is the only thing darwin and windows take.
    const doc = await build(template, 'package=./server&targets=mattermost');
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    expect(Object.keys(doc.targets)).toEqual(['linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64', 'windows-amd64']);
    for (const t of ['darwin-amd64', 'darwin-arm64', 'windows-amd64'])
      expect(doc.targets[t].verify, t).toMatchObject({ status: 'passed', method: 'header' });
    expect(doc.targets['darwin-arm64'].verify.message).toContain('Mach-O 64-bit arm64 executable for darwin');
    expect(doc.targets['windows-amd64'].artifact.name).toBe('mmfive-windows-amd64.exe');
    expect(doc.targets['windows-amd64'].verify.message).toContain('PE32+ x86-64 executable for windows');
    expect(doc.targets['linux-arm64'].verify).toMatchObject({ status: 'passed', method: 'elf' });

    const res = await api.bytes(`/v1/builds/${doc.id}/bundle.tar.gz`);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-five-'));
    await writeFile(path.join(dir, 'bundle.tar.gz'), res.bytes);
    const listing = (await run('tar', ['-tzf', 'bundle.tar.gz'], { cwd: dir })).stdout.trim().split('\n');
    const executables = listing.filter((n) => /server\/dist\/mmfive-[^.]+(\.exe)?$/.test(n)).sort();
    expect(executables).toEqual(
      ['darwin-amd64', 'darwin-arm64', 'linux-amd64', 'linux-arm64', 'windows-amd64.exe'].map(
        (p) => `com.example.mmfive/server/dist/mmfive-${p}`,
      ),
    );
    await run('tar', ['-xzf', 'bundle.tar.gz'], { cwd: dir });
    const manifest = JSON.parse(await readFile(path.join(dir, 'com.example.mmfive', 'plugin.json'), 'utf8'));
    expect(manifest.server.executables).toEqual({
      'linux-amd64': 'server/dist/mmfive-linux-amd64',
      'linux-arm64': 'server/dist/mmfive-linux-arm64',
      'darwin-amd64': 'server/dist/mmfive-darwin-amd64',
      'darwin-arm64': 'server/dist/mmfive-darwin-arm64',
      'windows-amd64': 'server/dist/mmfive-windows-amd64.exe',
    });
    // The linux executables run, amd64 natively and arm64 under qemu-user-static: pure Go, static.
    const dist = path.join(dir, 'com.example.mmfive', 'server', 'dist');
    expect((await run(path.join(dist, 'mmfive-linux-amd64'))).stdout).toBe('mmfive handshake 1|1|tcp\n');
    expect(
      (
        await run('qemu-aarch64-static', [path.join(dist, 'mmfive-linux-arm64')]).catch(async () =>
          run('docker', [
            'run',
            '--rm',
            '-v',
            `${dist}:/d:ro`,
            `plugforge/build:${doc.go}-linux-arm64`,
            'qemu-aarch64-static',
            '/d/mmfive-linux-arm64',
          ]),
        )
      ).stdout,
    ).toBe('mmfive handshake 1|1|tcp\n');

    const asPlugin = await api.submit(
      await tarOf(template, { gzip: true }),
      'mode=plugin&package=./server&targets=linux-amd64,darwin-arm64',
    );
    expect(asPlugin.status).toBe(400);
    expect(asPlugin.body.error).toMatchObject({
      code: 'target_needs_exe',
      message: expect.stringContaining('darwin-arm64 is for executables only'),
    });
  });

  it('says what to do when there is no bundle to make', async () => {
    const { 'plugin.json': _manifest, ...noManifest } = SERVER_PLUGIN;
    const broken = { ...SERVER_PLUGIN, 'plugin.json': '{"id":"../escape"}' };
    const [plugin, missing, invalid] = await Promise.all([
      // A plugin-mode build does not read plugin.json: a broken one is no reason to refuse it.
      api.submit(await tarOf({ ...broken, 'main.go': 'package main\n\nfunc main() {}\n' }, { gzip: true }), 'targets=linux-amd64'),
      build(noManifest, 'mode=exe&targets=linux-amd64'),
      // An exe build's manifest is checked when it is submitted, before anything builds.
      api.submit(await tarOf(broken, { gzip: true }), 'mode=exe&targets=linux-amd64'),
    ]);
    expect(plugin.status, plugin.text).toBe(202);
    expect(invalid.status).toBe(422);
    expect(invalid.body.error).toMatchObject({ code: 'manifest_invalid', message: expect.stringContaining('id must be') });

    const asPlugin = await api.get(`/v1/builds/${plugin.body.id}/bundle.tar.gz`);
    expect(asPlugin.status).toBe(409);
    expect(asPlugin.body.error.code).toBe('bundle_needs_exe');
    expect(asPlugin.body.error.message).toContain('mode=exe');

    expect(missing.status).toBe('succeeded');
    const noFile = await api.get(`/v1/builds/${missing.id}/bundle.tar.gz`);
    expect(noFile.status).toBe(409);
    expect(noFile.body.error).toMatchObject({ code: 'manifest_missing', message: expect.stringContaining('plugin.json') });

    await api.waitFor(plugin.body.id, undefined, 300_000);
  });
});
