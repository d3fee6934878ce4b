import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import express from 'express';
import type { Redis } from 'ioredis';
import type { Browser, BrowserContext, HTTPRequest, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorHandler } from '../src/api/http-errors.js';
import { webRoutes } from '../src/api/web-routes.js';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { createLogger } from '../src/log.js';
import { buildDocumentSchema, buildListSchema } from '../src/contract/api-schemas.js';
import { TARGET_IDS } from '../src/contract/targets.js';
import { launchChromium, requireChromium, requireCompiledWeb, watchPage } from './support/browser.js';
import { REPO_ROOT, requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { slowPlugin } from './support/fixtures.js';
import { ApiClient, TenantClient } from './support/http.js';
import { tarOf } from './support/source.js';
import { eventually } from './support/eventually.js';

/**
 * The web page (web/, served at / by src/api/web-routes.ts) in a real headless Chromium,
 * against a real service on Redis and Docker: submitting examples/hello as a .tar.gz and as
 * a folder packed in the browser, its logs arriving, a download checked against the build
 * document, cancel, the list, the watches (stubbed), tokens, and a phone's width. examples/hello is built once for
 * four targets and reused by the tests after the first. A matrix build is the API's answers
 * stubbed in the browser (request interception), as the schemas shape them.
 */
// Functions run inside the page (page.evaluate and the like) use the browser's globals; this
// project's tsconfig has no DOM library, so they are declared here, for this file only.
declare const document: any, location: any, window: any, sessionStorage: any, localStorage: any;

const run = promisify(execFile);
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const suffix = randomBytes(3).toString('hex');
const ALICE = { tenant: `web-alice-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const BOB = { tenant: `web-bob-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const OUTPUT = path.join(REPO_ROOT, 'test-output');

let redis: Redis;
let open: RunningService;
let tokened: RunningService;
let browser: Browser;
let api: ApiClient;
let work: string;
/** examples/hello as built from the page by the first test, for the tests after it. */
let hello: { id: string; doc: any } | undefined;

beforeAll(async () => {
  requireChromium();
  requireCompiledWeb();
  redis = await requireRedis();
  await requireImages(await requireDocker());
  open = await startService('serve', await testConfig());
  tokened = await startService(
    'serve',
    await testConfig({ PLUGFORGE_TOKENS: `${ALICE.tenant}:${sha256(ALICE.token)},${BOB.tenant}:${sha256(BOB.token)}` }),
  );
  api = new ApiClient(`http://127.0.0.1:${open.port}`);
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-web-'));
  browser = await launchChromium(path.join(work, 'downloads'));
});

afterAll(async () => {
  await browser?.close();
  await open?.stop();
  await tokened?.stop();
  redis?.disconnect();
});

/** A page of `context` (the browser's default one unless given) at `url`, its problems watched. */
async function openPage(
  url: string,
  options: { context?: BrowserContext; width?: number } = {},
): Promise<{ page: Page; problems: string[] }> {
  const page = await (options.context ?? browser.defaultBrowserContext()).newPage();
  await page.setViewport({ width: options.width ?? 1200, height: 900 });
  const problems = watchPage(page, new URL(url).origin);
  await page.goto(url, { waitUntil: 'load' });
  return { page, problems };
}

async function waitForFile(dir: string, name: string, timeoutMs = 20_000): Promise<Buffer> {
  let names: string[] = [];
  const downloaded = async () => {
    names = await readdir(dir).catch(() => [] as string[]);
    return names.includes(name) && !names.some((n) => n.endsWith('.crdownload'));
  };
  await eventually(downloaded, { timeoutMs, message: () => `${name} downloaded into ${dir} (there: ${names.join(', ') || 'nothing'})` });
  return readFile(path.join(dir, name));
}

/** The build id the page went to after a submission. */
async function submittedBuild(page: Page): Promise<string> {
  await page.waitForFunction(() => /^#\/builds\/[a-z0-9]+$/.test(location.hash), { timeout: 60_000 });
  return (await page.evaluate(() => location.hash)).slice('#/builds/'.length);
}

/** Leaves only `targets` checked in the submit form. */
async function chooseTargets(page: Page, targets: readonly string[]): Promise<void> {
  await page.$$eval(
    'input[name="targets"]',
    (boxes, wanted) => boxes.forEach((b) => ((b as any).checked = wanted.includes((b as any).value))),
    targets as string[],
  );
}

/** Waits until the submit form's Go select is filled from GET /v1/toolchains. */
async function formReady(page: Page): Promise<void> {
  await page.waitForFunction(() => [...document.querySelectorAll('#go option')].some((o: any) => /^1\.22\.\d+$/.test(o.value)), {
    timeout: 15_000,
  });
}

describe('the web page, served', () => {
  it('is one html page, one module with its imports and one style sheet, under a strict Content-Security-Policy, open without a token', async () => {
    for (const base of [api.base, `http://127.0.0.1:${tokened.port}`]) {
      const page = await fetch(`${base}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.headers.get('content-security-policy')).toBe(
        "default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
      );
      expect(page.headers.get('x-content-type-options')).toBe('nosniff');
      const html = await page.text();
      expect(html).toContain('<script type="module" src="/assets/web/app.js"></script>');
      expect(html).not.toMatch(/https?:\/\//);
      const js = await fetch(`${base}/assets/web/app.js`);
      expect(js.headers.get('content-type')).toMatch(/javascript/);
      expect((await fetch(`${base}/assets/app.css`)).headers.get('content-type')).toMatch(/^text\/css/);
    }
    // The API behind it still wants the token.
    expect((await fetch(`http://127.0.0.1:${tokened.port}/v1/builds`)).status).toBe(401);
    expect((await api.get('/assets/nothing.js')).body.error.code).toBe('not_found');
  });

  it('answers 503 web_page_missing, saying to run npm run build, when the page is not built', async () => {
    const app = express()
      .use(webRoutes(path.join(work, 'no-web')))
      .use(errorHandler(createLogger('silent')));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (const p of ['/', '/assets/web/app.js']) {
        const res = await fetch(`${base}${p}`);
        expect(res.status, p).toBe(503);
        const body = (await res.json()) as any;
        expect(body.error.code).toBe('web_page_missing');
        expect(body.error.message).toContain('run npm run build');
      }
    } finally {
      server.close();
    }
  });
});

describe('building from the page', () => {
  it('submits examples/hello as a .tar.gz, follows its logs, shows four targets succeed, and downloads an artifact matching the build document', async () => {
    const archive = path.join(work, 'hello.tar.gz');
    await run('tar', ['-C', path.join(REPO_ROOT, 'examples', 'hello'), '-czf', archive, '.']);
    const { page, problems } = await openPage(`${api.base}/#/new`);
    await formReady(page);
    await (await page.$('#source-archive'))!.uploadFile(archive);
    await page.waitForFunction(() => document.querySelector('#source-chosen')?.textContent?.includes('hello.tar.gz'));
    await page.click('#submit');
    const id = await submittedBuild(page);

    // Log lines appear in the panes while the build still runs (the page's badge says so).
    let linesWhileRunning = false;
    let state: { chars: number; status: string | null | undefined; done: number } | undefined;
    const shownSucceeded = async () => {
      state = await page.evaluate(() => ({
        chars: [...document.querySelectorAll('pre.log')].reduce((n, p) => n + (p.textContent?.length ?? 0), 0),
        status: document.querySelector('.build-head h1 .badge')?.textContent,
        done: [...document.querySelectorAll('article.target')].filter((a) => a.getAttribute('data-status') === 'succeeded').length,
      }));
      if (state.chars > 0 && state.status && ['queued', 'running'].includes(state.status)) linesWhileRunning = true;
      if (state.status === 'succeeded' && state.done === 4) return true;
      expect(['queued', 'running', 'preparing', 'succeeded', undefined], JSON.stringify(state)).toContain(state.status);
      return false;
    };
    await eventually(shownSucceeded, {
      timeoutMs: 180_000,
      message: () => `the page showing the build succeeded: ${JSON.stringify(state)}`,
    });
    expect(linesWhileRunning).toBe(true);
    const doc = (await api.get(`/v1/builds/${id}`)).body;
    expect(doc.status).toBe('succeeded');
    for (const t of TARGET_IDS) {
      // The log follow ends with the target: its last lines are in the pane.
      await page.waitForFunction(
        (target) => document.querySelector(`pre.log[data-target="${target}"]`)?.textContent?.includes(`built hello-${target}.so`),
        { timeout: 15_000 },
        t,
      );
      const card = await page.$eval(`article.target[data-target="${t}"]`, (a) => a.textContent ?? '');
      expect(card).toContain(doc.targets[t].artifact.sha256);
      expect(card).toContain(doc.targets[t].verify.status);
      // Where the time went: the phases the document records.
      expect(card).toMatch(/phases\s*(\w+ \d+\.\d s · )*compile \d+\.\d s/);
    }

    await page.click('article.target[data-target="linux-amd64"] a.download');
    const bytes = await waitForFile(path.join(work, 'downloads'), 'hello-linux-amd64.so');
    expect(sha256(bytes)).toBe(doc.targets['linux-amd64'].artifact.sha256);

    await mkdir(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, 'web-build-page.png'), fullPage: true });
    expect(problems).toEqual([]);
    hello = { id, doc };
    await page.close();
  });

  it("packs a chosen folder in the browser with the CLI's ignore rules, and the server builds it", async () => {
    // Chromium takes a directory for a webkitdirectory input through puppeteer's uploadFile.
    const dir = path.join(work, 'hello-folder');
    const long = `${'a-rather-long-directory-name-'.repeat(3)}x/${'another-long-directory-name-'.repeat(2)}y`;
    const files: Record<string, string> = {
      'go.mod': await readFile(path.join(REPO_ROOT, 'examples', 'hello', 'go.mod'), 'utf8'),
      'plugin.go': await readFile(path.join(REPO_ROOT, 'examples', 'hello', 'plugin.go'), 'utf8'),
      // Would fail the compile if it were sent: .plugforgeignore leaves it out.
      'broken.go': 'package main\n\nfunc Broken() int { return "no" }\n',
      '.plugforgeignore': 'broken.go\nnotes/\n',
      'notes/todo.txt': 'left out\n',
      'node_modules/x/index.js': 'left out (built-in rule)\n',
      'dist/old.so': 'left out (built-in rule)\n',
      [`${long}/readme.txt`]: 'a path over 100 bytes: the ustar prefix field\n',
    };
    for (const [name, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), text);
    }
    const { page, problems } = await openPage(`${api.base}/#/new`);
    await formReady(page);
    await (await page.$('#source-folder'))!.uploadFile(dir);
    await page.waitForFunction(() => document.querySelector('#source-chosen')?.textContent?.includes('Folder hello-folder: 8 file(s)'), {
      timeout: 5000,
    });
    await chooseTargets(page, ['linux-amd64']);
    await page.click('#submit');
    const id = await submittedBuild(page);
    const doc = await api.waitFor(id);
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    expect(doc.module).toBe('example.com/hello');
    expect(Object.keys(doc.targets)).toEqual(['linux-amd64']);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('cancels a running build with its Cancel button, and shows it canceled', async () => {
    // A source of its own: a build of the same bytes that ever finished would be a Go cache hit, over too soon.
    const archive = path.join(work, 'slow.tar.gz');
    await writeFile(
      archive,
      await tarOf({ ...slowPlugin(), 'nonce.go': `package main\n\nconst nonce = "${randomBytes(8).toString('hex')}"\n` }, { gzip: true }),
    );
    const { page, problems } = await openPage(`${api.base}/#/new`);
    await formReady(page);
    await (await page.$('#source-archive'))!.uploadFile(archive);
    await chooseTargets(page, ['linux-amd64']);
    await page.click('#submit');
    const id = await submittedBuild(page);
    await api.waitUntil(id, (d) => d.targets['linux-amd64'].status === 'running', 60_000);
    await page.waitForSelector('#cancel:not([hidden])');
    await page.click('#cancel');
    await page.waitForFunction(() => document.querySelector('.build-head h1 .badge')?.textContent === 'canceled', { timeout: 30_000 });
    expect((await api.get(`/v1/builds/${id}`)).body.status).toBe('canceled');
    expect(await page.$eval('#cancel', (b) => (b as any).hidden)).toBe(true);
    expect(problems).toEqual([]);
    await page.close();
  });
});

describe('the builds list', () => {
  it('lists the builds newest first, filters by status and module, and pages with More', async () => {
    expect(hello, 'the first build test must have passed').toBeDefined();
    // 21 builds of one module, each canceled at once: one more than a page.
    const many = await tarOf(
      { 'go.mod': `module example.com/many${suffix}\n\ngo 1.22\n`, 'p.go': 'package main\n\nfunc main() {}\n' },
      { gzip: true },
    );
    const ids: string[] = [];
    for (let i = 0; i < 21; i++) {
      const r = await api.submit(many, 'targets=linux-amd64');
      expect(r.status, r.text).toBe(202);
      ids.push(r.body.id);
      await api.request('DELETE', `/v1/builds/${r.body.id}`);
    }
    const { page, problems } = await openPage(`${api.base}/#/`);
    const rows = () => page.$$eval('li.build-row', (lis) => lis.map((li) => li.getAttribute('data-id')));
    // Newest first: the last of the 21 leads; examples/hello, older, is on a later page.
    await page.waitForSelector('li.build-row');
    expect((await rows())[0]).toBe(ids[20]);
    expect(await rows()).not.toContain(hello!.id);

    await page.select('#filter-status', 'canceled');
    await page.type('#filter-module', `example.com/many${suffix}`);
    await page.click('.filters button[type="submit"]');
    await page.waitForFunction(
      (n) => document.querySelectorAll('li.build-row').length === n && !document.querySelector('#more')?.hasAttribute('hidden'),
      {},
      20,
    );
    expect(await rows()).toEqual(ids.slice(1).reverse());
    await page.click('#more');
    await page.waitForFunction(() => document.querySelectorAll('li.build-row').length === 21);
    expect(await rows()).toEqual([...ids].reverse());
    expect(await page.$eval('#more', (b) => (b as any).hidden)).toBe(true);

    await page.select('#filter-status', 'succeeded');
    await page.click('.filters button[type="submit"]');
    await page.waitForSelector('li.empty');
    expect(problems).toEqual([]);
    await page.close();
  });
});

describe('tokens', () => {
  it('asks for the token first, keeps it for the tab only, shows the tenant its own builds only, and downloads with the header', async () => {
    const base = `http://127.0.0.1:${tokened.port}`;
    const alice = new TenantClient(base, ALICE.token);
    const bob = new TenantClient(base, BOB.token);
    const source = await readFile(path.join(work, 'hello.tar.gz'));
    const bobBuild = (await bob.submit(source, 'targets=linux-amd64')).body.id as string;
    await bob.request('DELETE', `/v1/builds/${bobBuild}`);
    const aliceBuild = (await alice.submit(source, 'targets=linux-amd64')).body.id as string;

    const downloads = path.join(work, 'alice-downloads');
    const context = await browser.createBrowserContext({ downloadBehavior: { policy: 'allow', downloadPath: downloads } });
    const { page, problems } = await openPage(`${base}/#/`, { context });
    await page.waitForSelector('#token-form');
    expect(await page.$eval('#token-form', (f) => f.textContent)).toContain('This server needs an API token');
    await page.type('#token', ALICE.token);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector(`li.build-row[data-id="${aliceBuild}"]`);
    expect(await page.$(`li.build-row[data-id="${bobBuild}"]`)).toBeNull();
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('plugforge.token'),
      local: localStorage.length,
      url: location.href,
    }));
    expect(stored).toEqual({ session: ALICE.token, local: 0, url: `${base}/#/` });

    // Bob's build, asked for by Alice: the API's refusal, code and message.
    await page.goto(`${base}/#/builds/${bobBuild}`);
    await page.waitForSelector('.error');
    expect(await page.$eval('.error', (e) => e.textContent)).toMatch(/^forbidden /);

    await page.goto(`${base}/#/builds/${aliceBuild}`);
    await page.waitForFunction(
      () => document.querySelector('article.target[data-target="linux-amd64"]')?.getAttribute('data-status') === 'succeeded',
      { timeout: 120_000 },
    );
    await page.click('article.target[data-target="linux-amd64"] a.download');
    const bytes = await waitForFile(downloads, 'hello-linux-amd64.so');
    expect(sha256(bytes)).toBe((await alice.get(`/v1/builds/${aliceBuild}`)).body.targets['linux-amd64'].artifact.sha256);
    expect(problems).toEqual([]);
    await context.close();
  });
});

/**
 * A matrix build of three releases and two targets (docs/hosts.md, "A matrix"), as the API
 * documents one: running, or ended with the third release's cells failed (`package_mismatch`,
 * built with the second release's run). Checked against the API's schema, so the page is shown
 * what the server sends.
 */
function matrixDocument(base: string, id: string, ended: boolean): any {
  const hosts = ['hello-host@1.0.0', 'hello-host@1.1.0', 'hello-host@1.1.1'];
  const builds = [
    { build: `${id}b1`, hosts: hosts.slice(0, 1), url: `${base}/v1/builds/${id}b1` },
    { build: `${id}b2`, hosts: hosts.slice(1), url: `${base}/v1/builds/${id}b2` },
  ];
  const cells = hosts.flatMap((host) =>
    ['linux-amd64', 'linux-arm64'].map((target) => {
      const build = host === hosts[0] ? builds[0]!.build : builds[1]!.build;
      const cell = { host, target, build, ...(host === hosts[2] ? { reusedFrom: hosts[1] } : {}) };
      if (!ended) return { ...cell, status: 'running' };
      if (host === hosts[2])
        return {
          ...cell,
          status: 'failed',
          verify: { status: 'failed', method: 'fingerprints', message: 'example.com/shared differs' },
          error: { code: 'package_mismatch', message: 'example.com/shared (module example.com/shared v1.1.0) differs' },
          finishedAt: '2026-01-02T03:05:00.000Z',
        };
      const name = `hello-${target}-for-hello-host-v${host.split('@')[1]}.so`;
      return {
        ...cell,
        status: 'succeeded',
        artifact: { name, size: 1234, sha256: sha256(name), url: `${base}/v1/builds/${build}/artifacts/${target}` },
        verify: { status: 'passed', method: 'fingerprints', message: 'the packages match' },
        finishedAt: '2026-01-02T03:05:00.000Z',
      };
    }),
  );
  return buildDocumentSchema.parse({
    id,
    status: ended ? 'failed' : 'running',
    go: '1.22.12',
    goRequested: '1.22',
    name: 'hello',
    mode: 'plugin',
    host: 'generic',
    module: 'example.com/hello',
    createdAt: '2026-01-02T03:04:00.000Z',
    ...(ended ? { finishedAt: '2026-01-02T03:05:00.000Z' } : {}),
    source: { sha256: sha256('source'), size: 300, vendored: false, requirements: false },
    build: { trimpath: true, tags: [] },
    verify: 'strict',
    targets: {},
    matrix: { hosts, builds, cells },
    links: { self: `${base}/v1/builds/${id}`, logs: `${base}/v1/builds/${id}/logs`, artifacts: `${base}/v1/builds/${id}/artifacts.tar.gz` },
  });
}

describe('a matrix build', () => {
  it('sends the Host releases as hosts=, shows the matrix as a grid of releases by targets polled until it ends, with no log stream of its own, and the list counts its cells', async () => {
    const id = `mx${suffix}`;
    let ended = false;
    let gets = 0;
    let submitted: URL | undefined;
    const ownLogs: string[] = [];
    const json = (r: HTTPRequest, status: number, body: unknown) =>
      r.respond({ status, contentType: 'application/json', body: JSON.stringify(body) });
    const { page, problems } = await openPage(`${api.base}/#/new`);
    await page.setRequestInterception(true);
    page.on('request', (r) => {
      const url = new URL(r.url());
      if (url.pathname === '/v1/builds' && r.method() === 'POST') {
        submitted = url;
        return void json(r, 202, matrixDocument(api.base, id, false));
      }
      if (url.pathname === `/v1/builds/${id}`) {
        gets += 1;
        return void json(r, 200, matrixDocument(api.base, id, ended));
      }
      if (url.pathname.startsWith(`/v1/builds/${id}/`)) ownLogs.push(url.pathname);
      if (url.pathname === '/v1/builds' && r.method() === 'GET') {
        const doc = matrixDocument(api.base, id, true);
        const head = ['id', 'status', 'go', 'goRequested', 'name', 'mode', 'host', 'module', 'createdAt', 'finishedAt'].map((k) => [
          k,
          doc[k],
        ]);
        const cells = doc.matrix.cells.map((c: any) => ({ host: c.host, target: c.target, status: c.status, verify: c.verify?.status }));
        const summary = { ...Object.fromEntries(head), targets: {}, cells, links: { self: doc.links.self } };
        return void json(r, 200, buildListSchema.parse({ builds: [summary] }));
      }
      return void r.continue();
    });

    await formReady(page);
    const archive = path.join(work, 'matrix.tar.gz');
    await writeFile(archive, await tarOf({ 'go.mod': 'module example.com/hello\n\ngo 1.22\n', 'p.go': 'package main\n' }, { gzip: true }));
    await (await page.$('#source-archive'))!.uploadFile(archive);
    await page.type('#hosts', 'hello-host@1.0.0, hello-host@1.1.0,hello-host@1.1.1');
    await chooseTargets(page, ['linux-amd64', 'linux-arm64']);
    await page.click('#submit');
    expect(await submittedBuild(page)).toBe(id);
    expect(submitted?.searchParams.get('hosts')).toBe('hello-host@1.0.0,hello-host@1.1.0,hello-host@1.1.1');
    expect(submitted?.searchParams.get('targets')).toBe('linux-amd64,linux-arm64');

    // Running: every cell shown running; then the page polls until it sees the matrix end.
    await page.waitForFunction(() => document.querySelectorAll('#matrix td.matrix-cell[data-status="running"]').length === 6);
    ended = true;
    await page.waitForFunction(() => document.querySelector('.build-head h1 .badge')?.textContent === 'failed', { timeout: 10_000 });
    expect(await page.$$eval('#matrix thead th', (ths) => ths.map((th) => th.textContent))).toEqual([
      'release',
      'linux-amd64',
      'linux-arm64',
    ]);
    const rows = await page.$$eval('#matrix tbody tr', (trs) =>
      trs.map((tr) => ({
        host: tr.getAttribute('data-host'),
        cells: [...tr.querySelectorAll('td')].map((td: any) => ({
          target: td.getAttribute('data-target'),
          status: td.querySelector('.badge')?.className,
          link: td.querySelector('a.download')?.getAttribute('href') ?? null,
          text: td.textContent,
        })),
      })),
    );
    expect(rows.map((r) => r.host)).toEqual(['hello-host@1.0.0', 'hello-host@1.1.0', 'hello-host@1.1.1']);
    const b1 = `${id}b1`;
    const b2 = `${id}b2`;
    expect(rows[0]!.cells[1]).toMatchObject({
      target: 'linux-arm64',
      status: 'badge status-succeeded',
      link: `/v1/builds/${b1}/artifacts/linux-arm64`,
    });
    expect(rows[0]!.cells[1]!.text).toContain('hello-linux-arm64-for-hello-host-v1.0.0.so');
    expect(rows[0]!.cells[1]!.text).toContain('passed');
    expect(rows[1]!.cells[0]!.link).toBe(`/v1/builds/${b2}/artifacts/linux-amd64`);
    expect(rows[1]!.cells[0]!.text).toContain('hello-linux-amd64-for-hello-host-v1.1.0.so');
    const failed = rows[2]!.cells[0]!;
    expect(failed).toMatchObject({ target: 'linux-amd64', status: 'badge status-failed', link: null });
    expect(failed.text).toContain('built with hello-host@1.1.0');
    expect(failed.text).toContain('package_mismatch example.com/shared (module example.com/shared v1.1.0) differs');
    // Its builds, each linked to its own page (where the logs are); none of its own.
    expect(await page.$$eval('.matrix-builds a', (as) => as.map((a) => a.getAttribute('href')))).toEqual([
      `#/builds/${b1}`,
      `#/builds/${b2}`,
    ]);
    expect(await page.$('pre.log')).toBeNull();
    expect(await page.$('a.download[href$="artifacts.tar.gz"]')).not.toBeNull();
    // Ended: no more polls (one is 2 s apart).
    const seen = gets;
    await new Promise((r) => setTimeout(r, 2500));
    expect(gets).toBe(seen);
    expect(ownLogs).toEqual([]);
    await mkdir(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, 'web-matrix-page.png'), fullPage: true });
    // On a phone, the grid scrolls in its box, not the page.
    await page.setViewport({ width: 375, height: 800 });
    const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: window.innerWidth }));
    expect(widths.scroll).toBeLessThanOrEqual(widths.view);
    await page.setViewport({ width: 1200, height: 900 });

    await page.evaluate(() => (location.hash = '#/'));
    await page.waitForSelector(`li.build-row[data-id="${id}"] .cells-summary`);
    expect(await page.$eval(`li.build-row[data-id="${id}"] .target-badges`, (s) => s.textContent)).toBe(
      '3 releases × 2 targets: 4 succeeded, 2 failed',
    );
    expect(problems).toEqual([]);
    await page.close();
  });
});

describe('the watches', () => {
  it("lists the tenant's watches under the builds: host, watched build linked, callback, the last rebuilds newest first, linked or with their error", async () => {
    const watches = [
      {
        id: 'wa1',
        build: 'watched1',
        host: 'gotify',
        callback: 'https://ci.example.com/hook',
        createdAt: '2026-12-01T10:00:00.000Z',
        builds: [
          { release: 'gotify@2.5.0', at: '2026-12-02T10:00:00.000Z', build: 'rebuilt250' },
          {
            release: 'gotify@2.6.0',
            at: '2026-12-03T10:00:00.000Z',
            error: { code: 'too_many_builds', message: 'Tenant t has 4 builds queued.' },
          },
          { release: 'gotify@2.6.1', at: '2026-12-04T10:00:00.000Z', build: 'rebuilt261' },
        ],
      },
      { id: 'wa2', build: 'watched2', host: 'flow', createdAt: '2026-12-05T10:00:00.000Z', builds: [] },
    ];
    const { page, problems } = await openPage(`${api.base}/#/new`);
    await page.setRequestInterception(true);
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/v1/watches' && r.method() === 'GET')
        return void r.respond({ status: 200, contentType: 'application/json', body: JSON.stringify({ watches }) });
      return void r.continue();
    });
    await page.evaluate(() => (location.hash = '#/'));
    await page.waitForSelector('#watches li.watch-row');
    expect(await page.$eval('#watches-title', (t) => t.textContent)).toBe('Watches');
    const rows = await page.$$eval('#watches li.watch-row', (lis) =>
      lis.map((li: any) => ({
        id: li.getAttribute('data-id'),
        host: li.querySelector('.watch-host')?.textContent,
        watched: li.querySelector('a.watch-build-link')?.getAttribute('href'),
        callback: li.querySelector('.watch-callback')?.textContent ?? null,
        rebuilds: [...li.querySelectorAll('li.watch-build')].map((b: any) => ({
          release: b.getAttribute('data-release'),
          link: b.querySelector('a.watch-rebuild')?.getAttribute('href') ?? null,
          error: b.querySelector('.cell-error')?.textContent ?? null,
        })),
        text: li.textContent,
      })),
    );
    expect(rows.map(({ text: _text, ...row }) => row)).toEqual([
      {
        id: 'wa1',
        host: 'gotify',
        watched: '#/builds/watched1',
        callback: 'https://ci.example.com/hook',
        rebuilds: [
          { release: 'gotify@2.6.1', link: '#/builds/rebuilt261', error: null },
          { release: 'gotify@2.6.0', link: null, error: 'too_many_builds Tenant t has 4 builds queued.' },
          { release: 'gotify@2.5.0', link: '#/builds/rebuilt250', error: null },
        ],
      },
      { id: 'wa2', host: 'flow', watched: '#/builds/watched2', callback: null, rebuilds: [] },
    ]);
    expect(rows[1]!.text).toContain('no callback');
    await page.click('a.watch-rebuild[href="#/builds/rebuilt261"]');
    expect(await page.evaluate(() => location.hash)).toBe('#/builds/rebuilt261');
    expect(problems).toEqual([]);
    await page.close();
  });
});

describe('on a phone', () => {
  it('has no horizontal scrolling at 375 px on the list, the form and a finished build', async () => {
    expect(hello, 'the first build test must have passed').toBeDefined();
    for (const route of ['#/', '#/new', `#/builds/${hello!.id}`]) {
      const { page, problems } = await openPage(`${api.base}/${route}`, { width: 375 });
      await page.waitForSelector(route === '#/new' ? '#submit' : route === '#/' ? 'li.build-row' : 'pre.log[data-target="linux-386"]');
      // A finished build's log follow reads the whole log and ends: wait for its last line.
      if (route.startsWith('#/builds/'))
        await page.waitForFunction(() =>
          document.querySelector('pre.log[data-target="linux-386"]')?.textContent?.includes('built hello-linux-386.so'),
        );
      const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, view: window.innerWidth }));
      expect(widths.scroll, route).toBeLessThanOrEqual(widths.view);
      if (route.startsWith('#/builds/')) await page.screenshot({ path: path.join(OUTPUT, 'web-build-page-phone.png'), fullPage: true });
      expect(problems, route).toEqual([]);
      await page.close();
    }
    expect(existsSync(path.join(OUTPUT, 'web-build-page.png'))).toBe(true);
  });
});
