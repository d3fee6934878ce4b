import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inflatedByteBudget, resolveArchiveLimits } from '../src/archive/archive-limits.js';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import type { Config } from '../src/config.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { filesUnder, gzipOfZeros, rawPost } from './support/hostile.js';
import { ApiClient } from './support/http.js';
import { paxEntry, rawTar, type RawEntry } from './support/raw-tar.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

/**
 * Every kind of hostile upload, through the real API of an in-process service (real Redis,
 * a real worker on Docker), with small caps. Each is refused with its own status and code,
 * a message saying what was wrong, and nothing in the data directory's blob store: no blob,
 * no temporary file.
 */
let redis: Redis;
let docker: Docker;
let service: RunningService;
let api: ApiClient;
let config: Config;
let blobs: string;

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  await requireImages(docker);
  config = await testConfig({
    PLUGFORGE_MAX_UPLOAD_MB: '1',
    PLUGFORGE_ARCHIVE_MAX_ENTRIES: '200',
    PLUGFORGE_ARCHIVE_MAX_FILE_MB: '2',
    PLUGFORGE_ARCHIVE_MAX_TOTAL_MB: '4',
    PLUGFORGE_ARCHIVE_MAX_DEPTH: '8',
    PLUGFORGE_ARCHIVE_MAX_NAME_BYTES: '256',
    PLUGFORGE_UPLOAD_IDLE_SECONDS: '1',
    PLUGFORGE_UPLOAD_TIMEOUT_SECONDS: '4',
  });
  service = await startService('serve', config);
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
  blobs = path.join(config.dataDir, 'blobs');
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

const GO_MOD = Buffer.from('module example.com/hostile\n\ngo 1.22\n');
const goModEntry: RawEntry = { name: 'go.mod', typeflag: '0', data: GO_MOD };
const gz = (entries: RawEntry[], options?: { end?: boolean }) => gzipSync(rawTar(entries, options));

/** Nothing of a refused upload may be left: no blob, no temporary file. */
async function expectNothingStored(): Promise<void> {
  expect(await filesUnder(blobs)).toEqual([]);
}

interface RefusedCase {
  label: string;
  body: () => Buffer | Promise<Buffer>;
  status: number;
  code: string;
  message: RegExp;
}

const refused: RefusedCase[] = [
  {
    label: 'absolute path',
    body: () => gz([goModEntry, { name: '/etc/cron.d/evil', typeflag: '0', data: Buffer.from('x') }]),
    status: 400,
    code: 'archive_absolute_path',
    message: /"\/etc\/cron\.d\/evil" has an absolute path/,
  },
  {
    label: '".." component',
    body: () => gz([goModEntry, { name: 'a/../../escape.go', typeflag: '0', data: Buffer.from('x') }]),
    status: 400,
    code: 'archive_parent_path',
    message: /"a\/\.\.\/\.\.\/escape\.go" contains a "\.\." component/,
  },
  {
    label: 'symlink',
    body: () => gz([goModEntry, { name: 'passwd', typeflag: '2', linkname: '/etc/passwd' }]),
    status: 400,
    code: 'archive_symlink',
    message: /"passwd" is a symbolic link \(to "\/etc\/passwd"\)/,
  },
  {
    label: 'hardlink',
    body: () => gz([goModEntry, { name: 'again.mod', typeflag: '1', linkname: 'go.mod' }]),
    status: 400,
    code: 'archive_hardlink',
    message: /"again\.mod" is a hard link/,
  },
  {
    label: 'character device',
    body: () => gz([goModEntry, { name: 'null', typeflag: '3' }]),
    status: 400,
    code: 'archive_device',
    message: /"null" is a character device/,
  },
  {
    label: 'block device',
    body: () => gz([goModEntry, { name: 'sda', typeflag: '4' }]),
    status: 400,
    code: 'archive_device',
    message: /"sda" is a block device/,
  },
  {
    label: 'FIFO',
    body: () => gz([goModEntry, { name: 'pipe', typeflag: '6' }]),
    status: 400,
    code: 'archive_fifo',
    message: /"pipe" is a named pipe/,
  },
  {
    label: 'NUL in a name',
    body: () =>
      gz([
        goModEntry,
        paxEntry({ path: Buffer.from('plugin.go\u0000.txt') }),
        { name: 'innocent.go', typeflag: '0', data: Buffer.from('x') },
      ]),
    status: 400,
    code: 'archive_bad_name',
    message: /contains a NUL byte/,
  },
  {
    label: 'backslash in a name',
    body: () => gz([goModEntry, { name: '..\\..\\windows.go', typeflag: '0', data: Buffer.from('x') }]),
    status: 400,
    code: 'archive_bad_name',
    message: /contains a backslash/,
  },
  {
    label: 'more entries than the cap (200)',
    body: () =>
      gz([
        goModEntry,
        ...Array.from({ length: 200 }, (_, i): RawEntry => ({ name: `f${i}.go`, typeflag: '0', data: Buffer.from('package main\n') })),
      ]),
    status: 400,
    code: 'archive_too_many_entries',
    message: /more than 200 entries/,
  },
  {
    // The header claims 3 MiB and no data follows: only the header can have refused it.
    label: 'a file over the per-file cap (2 MiB), refused at its header',
    body: () => gz([goModEntry, { name: 'huge.bin', typeflag: '0', size: 3 * 1024 * 1024 }], { end: false }),
    status: 413,
    code: 'archive_file_too_large',
    message: /"huge\.bin" is 3145728 bytes; the limit is 2097152/,
  },
  {
    label: 'files over the total cap (4 MiB)',
    body: () =>
      gz([goModEntry, ...['a', 'b', 'c'].map((n): RawEntry => ({ name: `${n}.bin`, typeflag: '0', data: Buffer.alloc(1536 * 1024) }))]),
    status: 413,
    code: 'archive_too_large',
    message: /add up to more than 4194304 bytes \(reached at "c\.bin"\)/,
  },
  {
    label: 'a path deeper than the cap (8)',
    body: () => gz([goModEntry, { name: 'a/b/c/d/e/f/g/h/i/x.go', typeflag: '0', data: Buffer.from('x') }]),
    status: 400,
    code: 'archive_too_deep',
    message: /is 10 directories deep; the limit is 8/,
  },
  {
    label: 'a name longer than the cap (256 bytes)',
    body: () =>
      gz([
        goModEntry,
        paxEntry({ path: `${'d'.repeat(100)}/${'e'.repeat(100)}/${'f'.repeat(100)}.go` }),
        { name: 'short.go', typeflag: '0', data: Buffer.from('x') },
      ]),
    status: 400,
    code: 'archive_name_too_long',
    message: /is 305 bytes long; the limit is 256/,
  },
  {
    label: 'the same path twice',
    body: () => gz([goModEntry, goModEntry]),
    status: 400,
    code: 'archive_duplicate_path',
    message: /"go\.mod" appears more than once/,
  },
  {
    label: 'two paths differing only in case',
    body: () =>
      gz([
        goModEntry,
        { name: 'Plugin.go', typeflag: '0', data: Buffer.from('package main\n') },
        { name: 'plugin.go', typeflag: '0', data: Buffer.from('package main\n') },
      ]),
    status: 400,
    code: 'archive_duplicate_path',
    message: /"plugin\.go" and "Plugin\.go" differ only in letter case/,
  },
  {
    label: 'not gzip (a zip file)',
    body: () => Buffer.concat([Buffer.from('PK\u0003\u0004'), randomBytes(200)]),
    status: 400,
    code: 'archive_not_gzip',
    message: /not gzip data/,
  },
  {
    label: 'truncated gzip',
    body: async () => {
      const good = await tarOf(GOTIFY_PLUGIN, { gzip: true });
      return good.subarray(0, Math.floor(good.length / 2));
    },
    status: 400,
    code: 'archive_truncated',
    message: /ends early/,
  },
  {
    label: 'gzip but not tar',
    body: () => gzipSync(Buffer.from('just some text, no tar headers here\n'.repeat(40))),
    status: 400,
    code: 'archive_not_tar',
    message: /gzip data but not a tar archive/,
  },
  { label: 'an empty archive (end blocks only)', body: () => gz([]), status: 400, code: 'archive_empty', message: /holds no entries/ },
  { label: 'an empty body', body: () => Buffer.alloc(0), status: 400, code: 'archive_empty', message: /upload is empty/ },
  {
    label: 'no go.mod at the root or in a single top directory',
    body: () =>
      gz([
        { name: 'a/go.mod', typeflag: '0', data: GO_MOD },
        { name: 'b/plugin.go', typeflag: '0', data: Buffer.from('x') },
      ]),
    status: 400,
    code: 'archive_no_go_mod',
    message: /no go\.mod at the root/,
  },
];

describe('archive validation through POST /v1/builds', () => {
  it.each(refused)('refuses $label with $status $code, storing nothing', async ({ body, status, code, message }) => {
    const res = await api.submit(await body(), 'targets=linux-amd64');
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.message).toMatch(message);
    await expectNothingStored();
  });

  it('cuts a gzip bomb off while it inflates: 512 MiB of zeros in under 600 KB', async () => {
    // One gzip member of 16 MiB of zeros, repeated: gunzip reads concatenated members as one stream.
    const member = await gzipOfZeros(16 * 1024 * 1024);
    const bomb = Buffer.concat(Array.from({ length: 32 }, () => member));
    expect(bomb.length).toBeLessThan(600 * 1024);
    const started = Date.now();
    const res = await api.submit(bomb, 'targets=linux-amd64');
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('archive_too_large');
    expect(res.body.error.message).toMatch(/unpacks to more than \d+ bytes of tar data/);
    const budget = inflatedByteBudget(resolveArchiveLimits(config.upload.archive));
    expect(res.body.error.limit).toBe(budget);
    // Inflated only a chunk past the budget (about 6 MiB), not the 512 MiB the bomb holds.
    expect(res.body.error.inflatedBytes).toBeGreaterThan(budget);
    expect(res.body.error.inflatedBytes).toBeLessThan(budget + 1024 * 1024);
    expect(Date.now() - started).toBeLessThan(3000);
    await expectNothingStored();
  });

  it('refuses through multipart/form-data the same way', async () => {
    const form = new FormData();
    form.set('source', new Blob([gz([goModEntry, { name: 'passwd', typeflag: '2', linkname: '/etc/passwd' }])]), 'plugin.tar.gz');
    form.set('targets', 'linux-amd64');
    const res = await fetch(`${api.base}/v1/builds`, { method: 'POST', body: form });
    const body = (await res.json()) as any;
    expect(res.status).toBe(400);
    expect(body.error.code).toBe('archive_symlink');
    await expectNothingStored();
  });
});

describe('upload size and pace', () => {
  it('answers 413 upload_too_large at once when Content-Length is over the cap (1 MiB), before reading the body', async () => {
    const res = await rawPost(api.base, '/v1/builds?targets=linux-amd64', {
      headers: { 'Content-Type': 'application/gzip', 'Content-Length': String(2 * 1024 * 1024) },
      chunks: [Buffer.alloc(16), ...Array.from({ length: 32 }, () => Buffer.alloc(64 * 1024))],
      gapMs: 100,
    });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('upload_too_large');
    expect(res.body.error.message).toMatch(/larger than 1 MiB/);
    expect(res.sent).toBeLessThan(1024 * 1024);
    await expectNothingStored();
  });

  it('cuts off a chunked upload that streams past the cap (no Content-Length to go by)', async () => {
    const upload = await tarOf({ 'go.mod': GO_MOD.toString(), 'random.bin': randomBytes(1536 * 1024) }, { gzip: true });
    expect(upload.length).toBeGreaterThan(1024 * 1024);
    const chunks: Buffer[] = [];
    for (let i = 0; i < upload.length; i += 64 * 1024) chunks.push(upload.subarray(i, i + 64 * 1024));
    const res = await rawPost(api.base, '/v1/builds?targets=linux-amd64', { headers: { 'Content-Type': 'application/gzip' }, chunks });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('upload_too_large');
    await expectNothingStored();
  });

  it('cuts off a client that sends a few bytes and stalls: 408 upload_timeout after the idle limit (1 s)', async () => {
    const good = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    const res = await rawPost(api.base, '/v1/builds?targets=linux-amd64', {
      headers: { 'Content-Type': 'application/gzip', 'Content-Length': String(good.length) },
      chunks: [good.subarray(0, 20)],
      end: false,
      giveUpMs: 10_000,
    });
    expect(res.status).toBe(408);
    expect(res.body.error.code).toBe('upload_timeout');
    expect(res.body.error.message).toMatch(/No data arrived for 1 s/);
    expect(res.ms).toBeGreaterThanOrEqual(1000);
    expect(res.ms).toBeLessThan(4000);
    await expectNothingStored();
  });

  it('cuts off a client that trickles a byte at a time: 408 after the total limit (4 s)', async () => {
    const good = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    const res = await rawPost(api.base, '/v1/builds?targets=linux-amd64', {
      headers: { 'Content-Type': 'application/gzip', 'Content-Length': String(good.length) },
      chunks: [...good].map((b) => Buffer.from([b])),
      gapMs: 200,
      giveUpMs: 15_000,
    });
    expect(res.status).toBe(408);
    expect(res.body.error.code).toBe('upload_timeout');
    expect(res.body.error.message).toMatch(/took longer than 4 s/);
    expect(res.ms).toBeGreaterThanOrEqual(4000);
    expect(res.ms).toBeLessThan(7000);
    expect(res.sent).toBeLessThan(good.length);
    await expectNothingStored();
  });

  it('cuts off a stalled multipart upload too, and survives it (a source part already refused included)', async () => {
    const boundary = `----plugforge${randomBytes(8).toString('hex')}`;
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="source"; filename="p.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`,
    );
    const good = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    // The second starts with a gzip header and a corrupt deflate block: the archive check has
    // given up on it before the stall is noticed.
    for (const start of [good.subarray(0, 40), Buffer.concat([good.subarray(0, 4), Buffer.alloc(36)])]) {
      const res = await rawPost(api.base, '/v1/builds?targets=linux-amd64', {
        headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` },
        chunks: [head, start],
        end: false,
        giveUpMs: 10_000,
      });
      expect(res.status).toBe(408);
      expect(res.body.error.code).toBe('upload_timeout');
      await expectNothingStored();
    }
    // A wait for time to pass, kept: what could still go wrong is an error the torn-down
    // parser raises late, an absence no condition shows; half a second gives it its moment.
    await new Promise((r) => setTimeout(r, 500));
    expect((await api.get('/healthz')).status).toBe(200);
  });

  it('refuses options that could reach the build command or container (ldflags, network, env, tags outside their grammar) before reading the body', async () => {
    const source = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    for (const option of [
      'ldflags=-X%20main.x%3D1',
      'gcflags=-N',
      'network=host',
      'env=CGO_CFLAGS%3D-fplugin',
      'mount=%2Fvar%2Frun%2Fdocker.sock',
    ]) {
      const res = await api.submit(source, `targets=linux-amd64&${option}`);
      expect(res.status, option).toBe(400);
      expect(res.body.error.code).toBe('unknown_option');
    }
    // tags is an option, held to Go's tag grammar: nothing a flag parser or a shell could misread.
    for (const option of ['tags=-race', 'tags=netgo%20-ldflags', 'tags=%24(id)', 'tags=a%3Bb', 'trimpath=%24(id)']) {
      const res = await api.submit(source, `targets=linux-amd64&${option}`);
      expect(res.status, option).toBe(400);
      expect(res.body.error.code).toBe('invalid_option');
    }
    await expectNothingStored();
  });
});

describe('an archive whose module sits in a single top-level directory', () => {
  it('is accepted, stored with that directory stripped, and builds', async () => {
    const nested = Object.fromEntries(Object.entries(GOTIFY_PLUGIN).map(([name, content]) => [`gotify-hello-1.0/${name}`, content]));
    const res = await api.submit(await tarOf(nested, { gzip: true }), 'targets=linux-amd64');
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const sha = res.body.source.sha256 as string;

    // The stored source is the clean tar: no prefix, nothing but the two files.
    const stored = await readFile(path.join(blobs, 'sha256', sha.slice(0, 2), sha));
    const names: string[] = [];
    const extract = tar.extract();
    const reading = (async () => {
      for await (const entry of extract) {
        names.push(entry.header.name);
        entry.resume();
      }
    })();
    extract.end(stored);
    await reading;
    expect(names.sort()).toEqual(['go.mod', 'plugin.go']);

    const doc = await api.waitFor(res.body.id);
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    expect(doc.targets['linux-amd64'].artifact.name).toBe('gotify-hello-linux-amd64.so');
  });
});

describe('Expect: 100-continue', () => {
  /** Sends only the headers of POST /v1/builds; the body goes only if the server says 100. */
  function post(query: string, body: Buffer): Promise<{ continued: boolean; status: number; json: any }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: service.port,
          method: 'POST',
          path: `/v1/builds?${query}`,
          headers: { 'Content-Type': 'application/gzip', 'Content-Length': String(body.length), Expect: '100-continue' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ continued, status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') }),
          );
        },
      );
      let continued = false;
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('error', reject);
      req.flushHeaders();
    });
  }

  it('refuses bad options with no 100 and no body sent, so the refusal always arrives', async () => {
    const r = await post('targets=linux-mips', await tarOf(GOTIFY_PLUGIN, { gzip: true }));
    expect(r).toMatchObject({ continued: false, status: 400, json: { error: { code: 'unknown_target' } } });
  });

  it('answers 100 once the options pass, and takes the body', async () => {
    const r = await post('targets=linux-amd64', await tarOf(GOTIFY_PLUGIN, { gzip: true }));
    expect(r.continued).toBe(true);
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    await api.waitFor(r.json.id);
  });
});
