import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from './support/cli.js';
import { TEST_REDIS_URL } from './support/env.js';
import { TenantClient } from './support/http.js';
import { hostBuildInfo } from './support/fixtures.js';
import { startServe, type ServeProcess } from './support/serve-process.js';
import { tarOf } from './support/source.js';

/**
 * A hostile tenant and old toolchains, against `plugforge serve` as a process: a release
 * below the toolchain floor (docs/decisions.md, "The toolchain floor") is refused 422
 * go_release_unsafe whether it comes as `go` or from a host binary's build info; the
 * operator's raised floor refuses what the default would take, a lowered one stops the
 * start; and the images a tenant may have made on demand are capped per day.
 */
const ALICE = 'alice-token-0123456789';
const BOB = 'bob-token-0123456789ab';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

const PLUGIN = {
  'go.mod': 'module example.com/floor\n\ngo 1.21\n',
  'plugin.go': 'package main\n\n// Upper is what a host would call.\nfunc Upper(s string) string { return s }\n\nfunc main() {}\n',
};

/** `go version -m` of a host built with go1.21.0 (what a tenant may send as hostBinary). */
const HOST_GO_1_21_0 = hostBuildInfo('example.com/host', '(devel)', '1.21.0');

let serve: ServeProcess;
let alice: TenantClient;
let bob: TenantClient;

beforeAll(async () => {
  serve = await startServe({
    PLUGFORGE_TOKENS: `alice:${sha256(ALICE)},bob:${sha256(BOB)}`,
    // Raised above plugforge's own floor for 1.22 (1.22.0): the suite's 1.22.12 stays buildable.
    PLUGFORGE_GO_FLOOR: '1.22.12',
    PLUGFORGE_IMAGES_ON_DEMAND_PER_TENANT: '1',
    // No proxy: an on-demand build of a release Debian lacks fails at once, in the worker.
    PLUGFORGE_GOPROXY: 'off',
    PLUGFORGE_DEFAULT_TARGETS: 'linux-amd64',
  });
  alice = new TenantClient(serve.url, ALICE);
  bob = new TenantClient(serve.url, BOB);
}, 90_000);

afterAll(async () => {
  await serve?.stop();
});

describe('the toolchain floor', () => {
  it('go=1.21.0 is refused 422 go_release_unsafe, naming the floor of 1.21 and CVE-2023-39323', async () => {
    const res = await alice.submit(await tarOf(PLUGIN, { gzip: true }), 'go=1.21.0&targets=linux-amd64');
    expect(res.status, res.text).toBe(422);
    expect(res.body.error.code).toBe('go_release_unsafe');
    expect(res.body.error.message).toMatch(/Go 1\.21\.0 .*below .*1\.21\.2.*CVE-2023-39323/);
  });

  it('a host binary whose build info says go1.21.0 is refused the same way', async () => {
    const form = new FormData();
    form.set('targets', 'linux-amd64');
    form.set('source', new Blob([await tarOf(PLUGIN, { gzip: true })]), 'plugin.tar.gz');
    form.append('hostBinary', new Blob([HOST_GO_1_21_0]), 'host.txt');
    const res = await fetch(`${serve.url}/v1/builds`, { method: 'POST', body: form, headers: { Authorization: `Bearer ${ALICE}` } });
    const body = (await res.json()) as any;
    expect(res.status, JSON.stringify(body)).toBe(422);
    expect(body.error.code).toBe('go_release_unsafe');
    expect(body.error.message).toMatch(/host binary.*go1\.21\.0.*below .*1\.21\.2.*CVE-2023-39323/);
  });

  it('the floor raised by PLUGFORGE_GO_FLOOR refuses a release the default floor takes', async () => {
    const res = await alice.submit(await tarOf(PLUGIN, { gzip: true }), 'go=1.22.5&targets=linux-amd64');
    expect(res.status, res.text).toBe(422);
    expect(res.body.error.code).toBe('go_release_unsafe');
    expect(res.body.error.message).toMatch(/Go 1\.22\.5 .*below .*1\.22\.12.*PLUGFORGE_GO_FLOOR/);
  });

  it("a floor lower than plugforge's own stops the start with a message naming it", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-floor-'));
    const cli = spawnCli(['serve'], {
      env: { PLUGFORGE_REDIS_URL: TEST_REDIS_URL, PLUGFORGE_PORT: '0', PLUGFORGE_DATA_DIR: dataDir, PLUGFORGE_GO_FLOOR: '1.21.1,1.23.8' },
    });
    // A service that starts anyway is stopped, and the test fails on its exit code.
    const timer = setTimeout(() => cli.child.kill('SIGKILL'), 15_000);
    const res = await cli.result.finally(() => clearTimeout(timer));
    expect(res.signal).toBeNull();
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(
      /PLUGFORGE_GO_FLOOR.*1\.21\.1 is below plugforge's floor for Go 1\.21 \(1\.21\.2, CVE-2023-39323\).*raised, never lowered/,
    );
  }, 30_000);
});

describe('images on demand, per tenant', () => {
  it('a tenant may have the images of one release a day made here; the next is 429, another tenant is not held back', async () => {
    const first = await alice.submit(await tarOf(PLUGIN, { gzip: true }), 'go=1.25.3&targets=linux-amd64');
    expect(first.status, first.text).toBe(202);
    expect(first.body.status).toBe('preparing');
    // The same release again counts once.
    const again = await alice.submit(await tarOf(PLUGIN, { gzip: true }), 'go=1.25.3&targets=linux-amd64');
    expect(again.status, again.text).toBe(202);

    const second = await alice.submit(await tarOf(PLUGIN, { gzip: true }), 'go=1.25.4&targets=linux-amd64');
    expect(second.status, second.text).toBe(429);
    expect(second.body.error.code).toBe('image_quota_exceeded');
    expect(second.body.error.message).toMatch(/1\.25\.3.*PLUGFORGE_IMAGES_ON_DEMAND_PER_TENANT.*1 a day/);

    const other = await bob.submit(await tarOf(PLUGIN, { gzip: true }), 'go=1.25.4&targets=linux-amd64');
    expect(other.status, other.text).toBe(202);
  });
});
