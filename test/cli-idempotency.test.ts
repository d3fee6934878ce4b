import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { REPO_ROOT } from './support/env.js';
import { TenantClient } from './support/http.js';
import { startServe, type ServeProcess } from './support/serve-process.js';

const suffix = randomBytes(3).toString('hex');
const A = { tenant: `idem-a-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const B = { tenant: `idem-b-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

let serve: ServeProcess;
let work: string;
let a: TenantClient;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-idempotency-'));
  serve = await startServe({ PLUGFORGE_TOKENS: `${A.tenant}:${sha256(A.token)},${B.tenant}:${sha256(B.token)}` });
  a = new TenantClient(serve.url, A.token);
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  await rm(work, { recursive: true, force: true });
});

/** The builds tenant A has (a tenant of this test's own). */
async function buildCount(): Promise<number> {
  return ((await a.get('/v1/builds?limit=100')).body as { builds: unknown[] }).builds.length;
}

/**
 * A proxy in front of the server that drops the client's connection once, at the worst
 * moment: the first POST /v1/builds is forwarded whole and the server has answered it (the
 * build exists), but the client never hears the answer; and the first artifact download
 * breaks off part-way.
 */
async function droppingProxy(): Promise<{ url: string; posts: { replayed: boolean; dropped: boolean }[]; close: () => Promise<void> }> {
  const posts: { replayed: boolean; dropped: boolean }[] = [];
  let cutDownloads = 0;
  const proxy = http.createServer((req, res) => {
    const headers = { ...req.headers };
    delete headers.expect;
    const upstream = http.request(
      { host: '127.0.0.1', port: serve.port, path: req.url, method: req.method, headers, agent: false },
      (answer) => {
        if (req.method === 'POST' && req.url?.startsWith('/v1/builds')) {
          const post = { replayed: answer.headers['idempotent-replayed'] === 'true', dropped: posts.length === 0 };
          posts.push(post);
          if (post.dropped) {
            answer.resume();
            req.socket.destroy();
            return;
          }
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        // The first artifact download breaks off after its first 64 KiB.
        if (req.method === 'GET' && /\/artifacts\/linux-[\w-]+$/.test(req.url ?? '') && cutDownloads++ === 0) {
          let sent = 0;
          answer.on('data', (chunk: Buffer) => {
            sent += chunk.length;
            if (sent <= 65536) res.write(chunk);
            else {
              answer.destroy();
              res.socket?.destroy();
            }
          });
          return;
        }
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  return { url, posts, close: () => new Promise((resolve) => proxy.close(() => resolve())) };
}

/** POST /v1/builds of examples/hello with curl, with the Idempotency-Key given; status, headers and body. */
function curlPost(
  key: string | undefined,
  tarball: string,
  token = A.token,
): Promise<{ status: number; replayed: boolean; body: { id?: string; error?: { code: string } } }> {
  return new Promise((resolve, reject) => {
    const args = [
      '-sS',
      '-D',
      '-',
      '--data-binary',
      `@${tarball}`,
      '-H',
      'Content-Type: application/gzip',
      '-H',
      `Authorization: Bearer ${token}`,
    ];
    if (key !== undefined) args.push('-H', `Idempotency-Key: ${key}`);
    args.push(`${serve.url}/v1/builds?targets=linux-amd64`);
    let out = '';
    const child = spawn('curl', args);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const [head = '', body = ''] = out.split('\r\n\r\n');
      resolve({
        status: Number(/^HTTP\/\S+ (\d+)/.exec(head)?.[1]),
        replayed: /^idempotent-replayed: true/im.test(head),
        body: JSON.parse(body),
      });
    });
  });
}

describe('a submission tried again', () => {
  it('the CLI, its connection dropped after the upload reached the server and its download cut off, ends with the one build, its artifact checked, and exit 0', async () => {
    const proxy = await droppingProxy();
    try {
      const before = await buildCount();
      const src = path.join(work, 'hello');
      await cp(path.join(REPO_ROOT, 'examples', 'hello'), src, { recursive: true });
      const out = path.join(work, 'out');
      const r = await runCli(['build', src, '--targets', 'linux-amd64', '--out', out, '--quiet', '--json'], {
        env: { PLUGFORGE_URL: proxy.url, PLUGFORGE_TOKEN: A.token },
      });
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(r.stderr).toMatch(/lost after the upload was sent.*\[connection_lost\]; trying again/);
      expect(r.stderr).toMatch(/The download of hello-linux-amd64\.so broke off .*\[connection_lost\]; trying again/);
      expect(JSON.parse(r.stdout).downloads['linux-amd64']).toMatchObject({ verified: true });
      expect(proxy.posts).toEqual([
        { replayed: false, dropped: true },
        { replayed: true, dropped: false },
      ]);
      expect(await buildCount()).toBe(before + 1);
      expect(JSON.parse(r.stdout).status).toBe('succeeded');
      expect((await readdir(out)).some((f) => f.endsWith('.so'))).toBe(true);
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('the API gives a key’s build back for a day, starts another for another key, and refuses a malformed key', async () => {
    const tarball = path.join(work, 'hello.tar.gz');
    await new Promise<void>((resolve, reject) => {
      const tar = spawn('tar', ['-czf', tarball, '-C', path.join(REPO_ROOT, 'examples', 'hello'), '.']);
      tar.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar exited ${code}`))));
    });
    const before = await buildCount();
    const key = randomUUID();
    const first = await curlPost(key, tarball);
    const again = await curlPost(key, tarball);
    expect(first.status).toBe(202);
    expect(first.replayed).toBe(false);
    expect(again.status).toBe(202);
    expect(again.replayed).toBe(true);
    expect(again.body.id).toBe(first.body.id);
    const other = await curlPost(randomUUID(), tarball);
    expect(other.body.id).not.toBe(first.body.id);
    // Keys are the tenant's own: another tenant's same key is another build.
    const theirs = await curlPost(key, tarball, B.token);
    expect(theirs.status).toBe(202);
    expect(theirs.replayed).toBe(false);
    expect(theirs.body.id).not.toBe(first.body.id);
    const none = await curlPost(undefined, tarball);
    expect(none.status).toBe(202);
    expect(await buildCount()).toBe(before + 3);
    const bad = await curlPost('has spaces in it', tarball);
    expect(bad.status).toBe(400);
    expect(bad.body.error?.code).toBe('invalid_idempotency_key');
    // The longest key it keeps is 200 characters (only its hash is stored).
    expect((await curlPost('k'.repeat(201), tarball)).body.error?.code).toBe('invalid_idempotency_key');
    expect((await curlPost('k'.repeat(200), tarball)).status).toBe(202);
  }, 60_000);
});
