import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import busboy from 'busboy';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireCompiledCli, runCli } from './support/cli.js';
import { GOTIFY_PLUGIN } from './support/fixtures.js';

/**
 * What `plugforge build` puts on the wire, seen by a stand-in server that records the
 * request and refuses it the way plugforge does (501 host_matching_unavailable).
 */
interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
  fields: Record<string, string>;
  files: Record<string, { filename: string; mimeType: string; bytes: Buffer }>;
  raw?: Buffer;
}

let server: Server;
let base = '';
const seen: Seen[] = [];

beforeAll(async () => {
  requireCompiledCli();
  server = createServer((req, res) => {
    const entry: Seen = { url: req.url ?? '', headers: req.headers, fields: {}, files: {} };
    seen.push(entry);
    const answer = () => {
      res.writeHead(501, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'host_matching_unavailable', message: 'not here yet' } }));
    };
    if ((req.headers['content-type'] ?? '').startsWith('multipart/form-data')) {
      const parser = busboy({ headers: req.headers });
      parser.on('field', (name, value) => (entry.fields[name] = value));
      parser.on('file', (name, file, info) => {
        const chunks: Buffer[] = [];
        file.on('data', (c: Buffer) => chunks.push(c));
        file.on(
          'end',
          () => (entry.files[name] = { filename: info.filename ?? '', mimeType: info.mimeType, bytes: Buffer.concat(chunks) }),
        );
      });
      parser.on('close', answer);
      req.pipe(parser);
    } else {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        entry.raw = Buffer.concat(chunks);
        answer();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function plugin(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-upload-'));
  for (const [name, content] of Object.entries(GOTIFY_PLUGIN)) await writeFile(path.join(dir, name), content);
  return dir;
}

describe('the upload of plugforge build', () => {
  it('sends the source as application/gzip with the options in the query and the token as a bearer', async () => {
    const dir = await plugin();
    seen.length = 0;
    const r = await runCli(
      [
        'build',
        dir,
        '--go',
        '1.22',
        '--targets',
        'linux-amd64,linux-386',
        '--name',
        'x',
        '--host',
        'gotify',
        '--mode',
        'plugin',
        '--token',
        's3cret',
      ],
      { env: { PLUGFORGE_URL: base } },
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('[501 host_matching_unavailable]');
    expect(seen).toHaveLength(1);
    const req = seen[0]!;
    const url = new URL(req.url, base);
    expect(url.pathname).toBe('/v1/builds');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      go: '1.22',
      targets: 'linux-amd64,linux-386',
      name: 'x',
      host: 'gotify',
      mode: 'plugin',
    });
    expect(req.headers['content-type']).toBe('application/gzip');
    expect(req.headers.authorization).toBe('Bearer s3cret');
    const tar = gunzipSync(req.raw!);
    expect(tar.includes(GOTIFY_PLUGIN['go.mod']!)).toBe(true);
  });

  it('takes the token from PLUGFORGE_TOKEN', async () => {
    seen.length = 0;
    await runCli(['build', await plugin()], { env: { PLUGFORGE_URL: base, PLUGFORGE_TOKEN: 'from-env' } });
    expect(seen[0]?.headers.authorization).toBe('Bearer from-env');
  });

  it('sends --host-go-mod as a hostGoMod field and --host-binary as a hostBinary file part, beside the source part', async () => {
    const dir = await plugin();
    const host = await mkdtemp(path.join(os.tmpdir(), 'plugforge-host-'));
    const goMod = 'module example.com/host\n\ngo 1.22.12\n\nrequire example.com/shared v1.2.3\n';
    const binary = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    await writeFile(path.join(host, 'go.mod'), goMod);
    await writeFile(path.join(host, 'hostd'), binary);
    seen.length = 0;
    const r = await runCli(
      ['build', dir, '--targets', 'linux-arm64', '--host-go-mod', path.join(host, 'go.mod'), '--host-binary', path.join(host, 'hostd')],
      { env: { PLUGFORGE_URL: base } },
    );
    expect(r.code).toBe(3);
    const req = seen[0]!;
    expect(req.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(new URL(req.url, base).searchParams.get('targets')).toBe('linux-arm64');
    expect(req.fields).toEqual({ hostGoMod: goMod });
    expect(req.files.hostBinary).toMatchObject({ filename: 'hostd', mimeType: 'application/octet-stream' });
    expect(req.files.hostBinary!.bytes.equals(binary)).toBe(true);
    expect(req.files.source).toMatchObject({ filename: 'source.tar.gz', mimeType: 'application/gzip' });
    expect(gunzipSync(req.files.source!.bytes).includes(GOTIFY_PLUGIN['plugin.go']!)).toBe(true);
  });
});
