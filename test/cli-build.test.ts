import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { TARGET_IDS } from '../src/contract/targets.js';
import { readElfFile } from '../src/verify/elf-sections.js';
import { requireCompiledCli, runCli, spawnCli } from './support/cli.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { BROKEN_PLUGIN, GOTIFY_PLUGIN, slowPlugin } from './support/fixtures.js';
import { ApiClient } from './support/http.js';
import { eventually } from './support/eventually.js';

const run = promisify(execFile);

/** `plugforge build` and friends as a subprocess, against a real service on Docker and Redis. */
let redis: Redis;
let service: RunningService;
let api: ApiClient;
let env: Record<string, string>;

beforeAll(async () => {
  requireCompiledCli();
  redis = await requireRedis();
  await requireImages(await requireDocker());
  service = await startService('serve', await testConfig());
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
  env = { PLUGFORGE_URL: api.base };
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

async function pluginDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-cli-'));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

function buildIdOf(stderr: string): string {
  const id = /build ([a-z0-9]+) accepted/.exec(stderr)?.[1];
  expect(id, stderr).toBeTruthy();
  return id!;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('plugforge build', () => {
  let good: { dir: string; id: string; stdout: string; stderr: string; code: number | null };

  beforeAll(async () => {
    const dir = await pluginDir(GOTIFY_PLUGIN);
    // From inside the plugin directory with no --out: the artifacts go to ./dist.
    const r = await runCli(['build', '--go', '1.22'], { env, cwd: dir });
    good = { dir, id: buildIdOf(r.stderr), stdout: r.stdout, stderr: r.stderr, code: r.code };
  });

  it('builds a good plugin: exit 0, four verified files in dist/, the logs and the summary table', async () => {
    expect(good.code, good.stderr).toBe(0);
    const doc = (await api.get(`/v1/builds/${good.id}`)).body;
    expect(doc.status).toBe('succeeded');
    const files = (await readdir(path.join(good.dir, 'dist'))).sort();
    // Beside each artifact its signature and SBOM, and the build's signed provenance.
    expect(files).toEqual(
      [
        'provenance.intoto.jsonl',
        ...TARGET_IDS.flatMap((t) => [`gotify-hello-${t}.so`, `gotify-hello-${t}.so.sig`, `gotify-hello-${t}.so.cdx.json`]),
      ].sort(),
    );
    for (const t of TARGET_IDS) {
      const bytes = await readFile(path.join(good.dir, 'dist', `gotify-hello-${t}.so`));
      expect(sha256(bytes), t).toBe(doc.targets[t].artifact.sha256);
      // One table row per target: status, verify, size, short sha256, time.
      const row = good.stdout.split('\n').find((l) => l.startsWith(`${t} `));
      expect(row, good.stdout).toMatch(
        new RegExp(`^${t}\\s+succeeded\\s+ok\\s+[\\d.]+ MiB\\s+${doc.targets[t].artifact.sha256.slice(0, 12)}\\s+[\\d.]+ s$`),
      );
      expect(good.stdout).toContain(`[${t}] [plugforge] built gotify-hello-${t}.so`);
    }
    expect(good.stdout).toMatch(/^TARGET\s+STATUS\s+VERIFY\s+SIZE\s+SHA256\s+TIME$/m);
    expect(good.stderr).toContain('uploaded');
    // Node's warnings (a listener leak, say) are not the CLI's to print.
    expect(good.stderr).not.toMatch(/Warning/);
  });

  it('leaves the previous outputs out of the next upload', async () => {
    await writeFile(path.join(good.dir, 'left-behind.so'), 'old');
    const r = await runCli(['build', '.', '--targets', 'linux-amd64', '--json', '--quiet'], { env, cwd: good.dir });
    expect(r.code, r.stderr).toBe(0);
    // Same files as the first upload (go.mod and plugin.go only): the same source archive.
    const first = (await api.get(`/v1/builds/${good.id}`)).body;
    expect(JSON.parse(r.stdout).source.sha256).toBe(first.source.sha256);
  });

  it('shows status, logs, downloads and toolchains of the server', async () => {
    const status = await runCli(['status', good.id], { env });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`build ${good.id}: succeeded`);
    expect(status.stdout).toMatch(/^linux-arm-7\s+succeeded\s+loaded/m);

    const logs = await runCli(['logs', good.id, '--follow', '--target', 'linux-arm64'], { env });
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain('[plugforge] built gotify-hello-linux-arm64.so');
    expect(logs.stdout).not.toContain('linux-386');

    const out = await mkdtemp(path.join(os.tmpdir(), 'plugforge-dl-'));
    const dl = await runCli(['download', good.id, '--out', out, '--json'], { env });
    expect(dl.code, dl.stderr).toBe(0);
    const downloads = JSON.parse(dl.stdout).downloads;
    for (const t of TARGET_IDS) {
      expect(downloads[t]).toMatchObject({ verified: true, path: path.join(out, `gotify-hello-${t}.so`) });
      expect(sha256(await readFile(downloads[t].path))).toBe(downloads[t].sha256);
    }

    const tc = await runCli(['toolchains'], { env });
    expect(tc.code, tc.stderr).toBe(0);
    expect(tc.stdout).toMatch(/^GO\s+linux-amd64\s+linux-arm-7\s+linux-arm64\s+linux-386$/m);
    expect(tc.stdout).toMatch(/^1\.22\.\d+\s+yes\s+yes\s+yes\s+yes$/m);
  });

  it('fails a broken plugin with exit 1 and the compiler error in the output', async () => {
    const dir = await pluginDir(BROKEN_PLUGIN);
    const r = await runCli(['build', dir, '--targets', 'linux-386', '--out', path.join(dir, 'out')], { env });
    expect(r.code, r.stderr).toBe(1);
    const output = r.stdout + r.stderr;
    expect(output).toMatch(/plugin\.go:3:\d+: cannot use "not a number"/);
    expect(r.stdout).toMatch(/^linux-386\s+failed \(compile_failed\)/m);
    expect(await readdir(dir)).not.toContain('out');

    // The caller's failed builds: this one among them, and nothing that did not fail.
    const failedId = buildIdOf(r.stderr);
    const list = await runCli(['list', '--status', 'failed', '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    const failed = JSON.parse(list.stdout);
    expect(failed.map((b: { id: string }) => b.id)).toContain(failedId);
    expect(failed.every((b: { status: string }) => b.status === 'failed')).toBe(true);
    expect(failed.find((b: { id: string }) => b.id === failedId)).toMatchObject({
      module: 'example.com/broken',
      targets: { 'linux-386': { status: 'failed' } },
    });
    const table = await runCli(['list', '--limit', '50'], { env });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+STATUS\s+GO\s+NAME\s+CREATED\s+TARGETS$/m);
    expect(table.stdout).toMatch(new RegExp(`^${failedId}\\s+failed\\s+1\\.22\\.\\d+\\s+broken\\s+\\S+\\s+1/1 failed$`, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^${good.id}\\s+succeeded\\s+.*4/4 succeeded$`, 'm'));
  });

  it('prints exactly one JSON document with --json, matching GET /v1/builds/:id plus the downloads', async () => {
    const dir = await pluginDir(GOTIFY_PLUGIN);
    const r = await runCli(
      ['build', dir, '--targets', 'linux-arm-7,linux-386', '--name', 'jsoned', '--json', '--out', path.join(dir, 'out')],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const printed = JSON.parse(r.stdout);
    const { downloads, evidence, ...doc } = printed;
    // Each target's phases get their teardown after the result is recorded: the rest is the same.
    const withoutPhases = (d: any) => ({
      ...d,
      targets: Object.fromEntries(Object.entries<any>(d.targets).map(([t, { phases: _phases, ...rest }]) => [t, rest])),
    });
    expect(withoutPhases(doc)).toEqual(withoutPhases((await api.get(`/v1/builds/${printed.id}`)).body));
    expect(Object.keys(downloads).sort()).toEqual(['linux-386', 'linux-arm-7']);
    // What proves them was kept beside them (docs/provenance.md, "Verify what you downloaded").
    expect(evidence.files.sort()).toEqual([
      'jsoned-linux-386.so.cdx.json',
      'jsoned-linux-386.so.sig',
      'jsoned-linux-arm-7.so.cdx.json',
      'jsoned-linux-arm-7.so.sig',
      'provenance.intoto.jsonl',
    ]);
    for (const [t, d] of Object.entries<any>(downloads)) {
      expect(d).toMatchObject({ target: t, verified: true, sha256: doc.targets[t].artifact.sha256, size: doc.targets[t].artifact.size });
      expect(d.path).toBe(path.join(dir, 'out', `jsoned-${t}.so`));
      expect(sha256(await readFile(d.path))).toBe(d.sha256);
    }
    // The build's output went to stderr.
    expect(r.stderr).toContain('[linux-386] [plugforge] built jsoned-linux-386.so');
  });

  describe('with one target slower than the other', () => {
    // The arm64 plugin's init sleeps, so its loading probe ends seconds after amd64's target.
    const slowArm64 = () => ({
      ...GOTIFY_PLUGIN,
      'slow_init.go': `package main\n\nimport (\n\t"runtime"\n\t"time"\n)\n\nconst nonce = "${randomBytes(8).toString('hex')}"\n\nfunc init() {\n\tif runtime.GOARCH == "arm64" {\n\t\ttime.Sleep(8 * time.Second)\n\t}\n}\n`,
    });
    const partial = /^\.gotify-hello-linux-amd64\.so\.[0-9a-f]+\.partial$/;

    /** Starts the CLI; resolves once amd64's artifact is being fetched into `out` while arm64 still runs. */
    async function untilFetchedEarly(out: string) {
      const dir = await pluginDir(slowArm64());
      const cli = spawnCli(['build', dir, '--targets', 'linux-amd64,linux-arm64', '--out', out], { env });
      await eventually(() => /build [a-z0-9]+ accepted/.test(cli.stderr()), {
        timeoutMs: 30_000,
        message: () => `the CLI accepting the build: ${cli.stderr()}`,
      });
      const id = buildIdOf(cli.stderr());
      await api.waitUntil(id, (d) => d.targets['linux-amd64'].status === 'succeeded', 120_000);
      let seen: string[] = [];
      await eventually(async () => (seen = await readdir(out).catch(() => [])).some((f) => partial.test(f)), {
        timeoutMs: 5_000,
        intervalMs: 20,
        message: () => `a .partial file in ${out} (there: ${seen.join(', ')})`,
      });
      expect(
        seen.filter((f) => partial.test(f)),
        `files in ${out}: ${seen.join(', ')}`,
      ).toHaveLength(1);
      const doc = (await api.get(`/v1/builds/${id}`)).body;
      expect(doc.targets['linux-arm64'].status, 'arm64 should still be running').toBe('running');
      return { cli, id };
    }

    it('fetches each artifact as soon as its target succeeded, and places it with the rest when the build ends', async () => {
      const out = await mkdtemp(path.join(os.tmpdir(), 'plugforge-early-'));
      const { cli, id } = await untilFetchedEarly(out);
      const r = await cli.result;
      expect(r.code, r.stderr).toBe(0);
      const doc = (await api.get(`/v1/builds/${id}`)).body;
      const files = (await readdir(out)).sort();
      expect(files).toEqual(
        [
          'provenance.intoto.jsonl',
          ...['linux-amd64', 'linux-arm64'].flatMap((t) => [
            `gotify-hello-${t}.so`,
            `gotify-hello-${t}.so.sig`,
            `gotify-hello-${t}.so.cdx.json`,
          ]),
        ].sort(),
      );
      for (const t of ['linux-amd64', 'linux-arm64'])
        expect(sha256(await readFile(path.join(out, `gotify-hello-${t}.so`))), t).toBe(doc.targets[t].artifact.sha256);
    });

    it('leaves nothing in --out when the build is interrupted after an artifact was fetched early', async () => {
      const out = await mkdtemp(path.join(os.tmpdir(), 'plugforge-early-'));
      const { cli, id } = await untilFetchedEarly(out);
      cli.child.kill('SIGINT');
      const r = await cli.result;
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toContain(`build ${id} canceled`);
      expect(await readdir(out)).toEqual([]);
    });
  });

  it('cancels the build on Ctrl-C and exits non-zero, saying so', async () => {
    // A source of its own: a build of the same bytes that ever finished would be a Go cache hit, over too soon.
    const dir = await pluginDir({ ...slowPlugin(), 'nonce.go': `package main\n\nconst nonce = "${randomBytes(8).toString('hex')}"\n` });
    const cli = spawnCli(['build', dir, '--targets', 'linux-amd64', '--out', path.join(dir, 'out')], { env });
    await eventually(() => /build [a-z0-9]+ accepted/.test(cli.stderr()), {
      timeoutMs: 30_000,
      message: () => `the CLI accepting the build: ${cli.stderr()}`,
    });
    const id = buildIdOf(cli.stderr());
    await api.waitUntil(id, (d) => d.targets['linux-amd64'].status === 'running', 60_000);
    cli.child.kill('SIGINT');
    const r = await cli.result;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain(`canceling build ${id}`);
    expect(r.stderr).toContain(`build ${id} canceled`);
    expect((await api.waitFor(id)).status).toBe('canceled');
  });
});

describe('plugforge build refusing', () => {
  it("builds Mattermost's starter template as it is in one line: root go.mod, server/ with a sub-package, its Mattermost module replaced locally, five platforms, the bundle and its signature", async () => {
    const manifest = {
      id: 'com.mattermost.plugin-starter-template',
      name: 'Plugin Starter Template',
      version: '0.1.0',
      min_server_version: '6.2.1',
      server: {
        executables: {
          'linux-amd64': 'server/dist/plugin-linux-amd64',
          'linux-arm64': 'server/dist/plugin-linux-arm64',
          'darwin-amd64': 'server/dist/plugin-darwin-amd64',
          'darwin-arm64': 'server/dist/plugin-darwin-arm64',
          'windows-amd64': 'server/dist/plugin-windows-amd64.exe',
        },
      },
      webapp: { bundle_path: 'webapp/dist/main.js' },
      settings_schema: { header: '', footer: '', settings: [] },
    };
    const mm = 'github.com/mattermost/mattermost/server/public';
    const dir = await pluginDir({
      'go.mod': `module github.com/mattermost/mattermost-plugin-starter-template\n\ngo 1.22\n\nrequire ${mm} v0.1.0\n\nreplace ${mm} => ./build/mmstub\n`,
      'build/mmstub/go.mod': `module ${mm}\n\ngo 1.22\n`,
      'build/mmstub/plugin/client.go':
        'package plugin\n\nimport "fmt"\n\n// ClientMain is where a server plugin process starts: it prints its handshake.\nfunc ClientMain(p any) { fmt.Printf("1|1|tcp|127.0.0.1:0|grpc %T\\n", p) }\n',
      'server/main.go': `package main\n\nimport "${mm}/plugin"\n\nfunc main() { plugin.ClientMain(&Plugin{}) }\n`,
      'server/plugin.go': 'package main\n\n// Plugin implements the plugin API.\ntype Plugin struct{ configuration *configuration }\n',
      'server/configuration.go': 'package main\n\ntype configuration struct{ Enabled bool }\n',
      'server/command/command.go': 'package command\n\n// Trigger is the slash command.\nconst Trigger = "hello"\n',
      'server/plugin_test.go': 'package main\n',
      'plugin.json': JSON.stringify(manifest),
      'webapp/dist/main.js': 'console.log("starter");\n',
      'webapp/src/index.tsx': 'the webapp source the bundle leaves out\n',
      'assets/starter-template-icon.svg': '<svg/>\n',
      'public/hello.html': '<p>hello</p>\n',
      Makefile: 'include build/setup.mk\n',
    });
    const out = await mkdtemp(path.join(os.tmpdir(), 'plugforge-starter-'));
    const r = await runCli(
      ['build', dir, '--package', './server', '--targets', 'mattermost', '--bundle', '--out', out, '--json', '--quiet'],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.bundle).toMatchObject({ executables: 5, verified: true });
    expect(path.basename(result.bundle.path)).toBe('com.mattermost.plugin-starter-template-0.1.0.tar.gz');
    expect(result.bundle.signature).toBe(`${result.bundle.path}.sig`);
    const id = 'com.mattermost.plugin-starter-template';
    const listing = (await run('tar', ['-tzf', result.bundle.path])).stdout.trim().split('\n').sort();
    // What the template's make dist packs (its server/dist names are plugin-<os>-<arch>; plugforge's are the artifacts' own, mapped by plugin.json).
    expect(listing.filter((n) => !/\.(sig|jsonl)$/.test(n))).toEqual(
      [
        `${id}/plugin.json`,
        `${id}/assets/starter-template-icon.svg`,
        `${id}/public/hello.html`,
        `${id}/webapp/dist/main.js`,
        ...['darwin-amd64', 'darwin-arm64', 'linux-amd64', 'linux-arm64', 'windows-amd64.exe'].map(
          (p) => `${id}/server/dist/mattermost-plugin-starter-template-${p}`,
        ),
      ].sort(),
    );
    await run('tar', ['-xzf', result.bundle.path, '-C', out]);
    const written = JSON.parse(await readFile(path.join(out, id, 'plugin.json'), 'utf8'));
    expect(written).toEqual({
      ...manifest,
      server: {
        executables: Object.fromEntries(
          ['linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64', 'windows-amd64'].map((p) => [
            p,
            `server/dist/mattermost-plugin-starter-template-${p}${p.startsWith('windows') ? '.exe' : ''}`,
          ]),
        ),
      },
    });
    // The linux-amd64 server executable starts as a plugin process does: the handshake line.
    expect((await run(path.join(out, id, 'server', 'dist', 'mattermost-plugin-starter-template-linux-amd64'))).stdout).toBe(
      '1|1|tcp|127.0.0.1:0|grpc *main.Plugin\n',
    );
  });

  it('builds executables with --mode exe --bundle and keeps the Mattermost-style bundle, checked against the build', async () => {
    const dir = await pluginDir({
      'go.mod': 'module example.com/cliserver\n\ngo 1.22\n',
      'main.go': 'package main\n\nfunc main() {}\n',
      'plugin.json':
        '{"id":"com.example.cliserver","name":"CLI server","version":"0.2.0","server":{"executable":"server/dist/plugin-linux-amd64"}}',
      'assets/icon.svg': '<svg/>\n',
    });
    const out = await mkdtemp(path.join(os.tmpdir(), 'plugforge-bundle-cli-'));
    const r = await runCli(
      ['build', dir, '--mode', 'exe', '--targets', 'linux-amd64,linux-arm64', '--bundle', '--out', out, '--json', '--quiet'],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.bundle).toMatchObject({ path: path.join(out, 'com.example.cliserver-0.2.0.tar.gz'), executables: 2, verified: true });
    expect((await readdir(out)).sort()).toEqual([
      'cliserver-linux-amd64',
      'cliserver-linux-amd64.cdx.json',
      'cliserver-linux-amd64.sig',
      'cliserver-linux-arm64',
      'cliserver-linux-arm64.cdx.json',
      'cliserver-linux-arm64.sig',
      'com.example.cliserver-0.2.0.tar.gz',
      // Its OpenPGP signature, as Mattermost takes it (test/bundle.test.ts has gpg verify one).
      'com.example.cliserver-0.2.0.tar.gz.sig',
      'provenance.intoto.jsonl',
    ]);
    expect(result.bundle.signature).toBe(path.join(out, 'com.example.cliserver-0.2.0.tar.gz.sig'));
    const serverSig = await api.bytes(`/v1/builds/${result.id}/bundle.tar.gz.sig`);
    expect(sha256(await readFile(result.bundle.signature))).toBe(sha256(serverSig.bytes));
    const server = await api.bytes(`/v1/builds/${result.id}/bundle.tar.gz`);
    expect(sha256(await readFile(result.bundle.path))).toBe(sha256(server.bytes));

    // download --bundle gives the same; a plugin build has no bundle, and says why (exit 3).
    const again = await mkdtemp(path.join(os.tmpdir(), 'plugforge-bundle-dl-'));
    const dl = await runCli(['download', result.id, '--bundle', '--out', again], { env });
    expect(dl.code, dl.stderr).toBe(0);
    expect(dl.stdout).toContain(
      `bundle: ${path.join(again, 'com.example.cliserver-0.2.0.tar.gz')} (2 executable(s), each matching the build document; signed: com.example.cliserver-0.2.0.tar.gz.sig)`,
    );
    const plugin = await runCli(
      ['build', await pluginDir(GOTIFY_PLUGIN), '--targets', 'linux-amd64', '--out', again, '--json', '--quiet'],
      { env },
    );
    expect(plugin.code, plugin.stderr).toBe(0);
    const none = await runCli(['download', JSON.parse(plugin.stdout).id, '--bundle', '--out', again], { env });
    expect(none.code).toBe(3);
    expect(none.stderr).toContain('bundle_needs_exe');
    // --bundle without --mode exe is a usage error, before anything is sent.
    const usage = await runCli(['build', dir, '--bundle'], { env });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--bundle packs server executables: build with --mode exe');
  });

  it('exits 2 with a usage line on a wrong option', async () => {
    const r = await runCli(['build', '--target', 'linux-amd64'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown option '--target'");
    expect(r.stderr).toMatch(/^usage: plugforge build \[DIR\]/m);
    expect(r.stdout).toBe('');
  });

  it('exits 2 for a directory without go.mod, before uploading anything', async () => {
    const dir = await pluginDir({ 'README.md': 'not a module\n' });
    const r = await runCli(['build', dir], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has no go.mod');
  });

  it('exits 3 within a few seconds when nothing listens at the server address', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const dir = await pluginDir(GOTIFY_PLUGIN);
    const r = await runCli(['build', dir, '--server', `http://127.0.0.1:${port}`], { env });
    expect(r.code, r.stderr).toBe(3);
    expect(r.ms).toBeLessThan(10_000);
    expect(r.stderr).toContain('Cannot reach plugforge');
  });

  it('exits 3 with the server code and message when the server refuses the request', async () => {
    const dir = await pluginDir(GOTIFY_PLUGIN);
    const r = await runCli(['build', dir, '--targets', 'linux-mips'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/Unknown target "linux-mips".*\[400 unknown_target\]/);
  });

  it('still reports the server refusal when it comes while a large upload is streaming', async () => {
    // Incompressible, so the server answers long before the body ends and closes the connection.
    const dir = await pluginDir({ ...GOTIFY_PLUGIN, 'assets/noise.bin': randomBytes(24 * 1024 * 1024).toString('base64') });
    const r = await runCli(['build', dir, '--targets', 'linux-amd64,linux-mips'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/Unknown target "linux-mips".*\[400 unknown_target\]/);
  });

  it('still reports the server refusal when it comes while many small files are being packed', async () => {
    // Files read whole (under 1 MiB each), incompressible: the refusal arrives mid-archive.
    const small = Object.fromEntries(
      Array.from({ length: 400 }, (_, i) => [`assets/noise-${i}.bin`, randomBytes(48 * 1024).toString('base64')]),
    );
    const dir = await pluginDir({ ...GOTIFY_PLUGIN, ...small });
    const r = await runCli(['build', dir, '--targets', 'linux-amd64,linux-mips'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/Unknown target "linux-mips".*\[400 unknown_target\]/);
  });

  it('sends --host-go-mod and --host-binary as a form, with --trimpath, --strip, --tags and --verify', async () => {
    const dir = await pluginDir(GOTIFY_PLUGIN);
    const goMod = await mkdtemp(path.join(os.tmpdir(), 'plugforge-host-'));
    await writeFile(path.join(goMod, 'go.mod'), 'module example.com/host\n\ngo 1.22\n');
    const r = await runCli(
      [
        'build',
        dir,
        '--targets',
        'linux-amd64',
        '--host-go-mod',
        path.join(goMod, 'go.mod'),
        '--trimpath',
        '--strip',
        '--tags',
        'netgo,osusergo',
        '--verify',
        'warn',
        '--json',
        '--out',
        path.join(goMod, 'dist'),
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.hostMatch).toMatchObject({ from: 'goMod', trimpath: true, tags: ['netgo', 'osusergo'], modules: 0, aligned: [] });
    expect(doc.build).toEqual({ trimpath: true, tags: ['netgo', 'osusergo'], strip: true });
    expect(doc.verify).toBe('warn');
    // Stripped (-ldflags=-s -w): no symbol table, no DWARF, and still loaded by the probe.
    expect(doc.targets['linux-amd64'].verify).toMatchObject({ status: 'passed', probe: { status: 'passed' } });
    const sections = readElfFile(await readFile(path.join(goMod, 'dist', doc.targets['linux-amd64'].artifact.name))).sections.map(
      (s) => s.name,
    );
    expect(sections).toContain('.dynsym');
    expect(sections.filter((s) => s === '.symtab' || s.startsWith('.debug_') || s.startsWith('.zdebug_'))).toEqual([]);
    await writeFile(path.join(goMod, 'host'), Buffer.alloc(4096, 1));
    const bin = await runCli(['build', dir, '--host-binary', path.join(goMod, 'host')], { env });
    expect(bin.code).toBe(3);
    expect(bin.stderr).toContain('[400 host_buildinfo_invalid]');
  });
});
