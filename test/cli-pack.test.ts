import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip, gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { IgnoreRules, parseIgnoreFile } from '../src/client/ignore-rules.js';
import { listSourceFiles, packSource } from '../src/client/pack-directory.js';
import { EventStreamParser } from '../src/client/event-stream.js';
import { repackSourceArchive } from '../src/archive/archive-validator.js';

/** What `plugforge build` would upload: the entries of the packed archive, with their contents. */
async function unpack(stream: Readable): Promise<Map<string, { type: string; body: string; mode?: number }>> {
  const entries = new Map<string, { type: string; body: string; mode?: number }>();
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (c) => {
        chunks.push(c as Buffer);
      });
      body.on('end', () => {
        entries.set(header.name, { type: header.type ?? 'file', body: Buffer.concat(chunks).toString('utf8'), mode: header.mode });
        next();
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  stream.pipe(createGunzip()).pipe(extract);
  await done;
  return entries;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function write(root: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), content);
  }
}

const SECRET = 'TOP-SECRET-0f9c2d';

describe('packing a plugin directory', () => {
  it('leaves out .git, node_modules, previous outputs and what .plugforgeignore names', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'plugforge-pack-'));
    await write(root, {
      'go.mod': 'module example.com/packed\n\ngo 1.22\n',
      'plugin.go': 'package main\n\nfunc main() {}\n',
      'internal/util.go': 'package internal\n',
      '.git/config': '[core]\n',
      '.git/objects/ab/cdef': 'blob',
      'node_modules/left-pad/index.js': 'module.exports = 1;\n',
      'web/node_modules/x/y.js': 'nested\n',
      'dist/packed-linux-amd64.so': 'old artifact',
      'build/out/packed-linux-386.so': 'custom --out',
      'packed-linux-arm64.so': 'old artifact at the root',
      'testdata/fixture.so': 'a .so below the root is source data',
      'debug.log': 'noise',
      'logs/keep.log': 'kept by negation',
      'logs/other.log': 'noise',
      'secrets/key.pem': 'private',
      'assets/big.bin': 'large',
      'assets/small.txt': 'small',
      '.plugforgeignore': ['# build noise', '*.log', '!keep.log', '/secrets/', 'assets/*.bin', '', '  '].join('\n'),
    });

    const listing = await listSourceFiles(root, { exclude: [path.join(root, 'build', 'out')] });
    const entries = await unpack(packSource(listing));
    expect([...entries.keys()].sort()).toEqual(
      ['.plugforgeignore', 'assets/small.txt', 'go.mod', 'internal/util.go', 'logs/keep.log', 'plugin.go', 'testdata/fixture.so'].sort(),
    );
    expect(entries.get('go.mod')?.body).toBe('module example.com/packed\n\ngo 1.22\n');
    expect(listing.files.map((f) => f.name)).toEqual([...entries.keys()]);
    expect(listing.bytes).toBe([...entries.values()].reduce((n, e) => n + Buffer.byteLength(e.body), 0));
  });

  it('never follows a symbolic link: one pointing out of DIR is left out unread, with a warning entry', async () => {
    const outside = await mkdtemp(path.join(os.tmpdir(), 'plugforge-outside-'));
    await writeFile(path.join(outside, 'secret.txt'), `${SECRET}\n`);
    await mkdir(path.join(outside, 'dir'));
    await writeFile(path.join(outside, 'dir', 'inner.txt'), `${SECRET} inner\n`);
    // A FIFO: a packer that opened the link's target would hang here instead of failing.
    execFileSync('mkfifo', [path.join(outside, 'pipe')]);

    const root = await mkdtemp(path.join(os.tmpdir(), 'plugforge-pack-'));
    await write(root, { 'go.mod': 'module example.com/linked\n\ngo 1.22\n', 'plugin.go': 'package main\n\nfunc main() {}\n' });
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'leak.txt'));
    await symlink(path.join(outside, 'dir'), path.join(root, 'leakdir'));
    await symlink(path.join(outside, 'pipe'), path.join(root, 'pipe'));
    await symlink('plugin.go', path.join(root, 'inside-link.go'));
    // .plugforgeignore cannot bring a link back.
    await writeFile(path.join(root, '.plugforgeignore'), '!leak.txt\n!leakdir/\n');

    const listing = await listSourceFiles(root);
    expect(listing.skipped).toEqual([
      { name: 'inside-link.go', kind: 'symlink' },
      { name: 'leak.txt', kind: 'symlink' },
      { name: 'leakdir', kind: 'symlink' },
      { name: 'pipe', kind: 'symlink' },
    ]);
    const gz = await collect(packSource(listing));
    const entries = await unpack(Readable.from([gz]));
    expect([...entries.keys()].sort()).toEqual(['.plugforgeignore', 'go.mod', 'plugin.go']);
    for (const e of entries.values()) expect(e.type).toBe('file');
    const tarBytes = gunzipSync(gz);
    expect(tarBytes.includes(SECRET)).toBe(false);
    // No link entry either: its target path would be in the header.
    expect(tarBytes.includes(outside)).toBe(false);
  });

  it('gives an archive the server accepts, and the same bytes for the same tree', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'plugforge-pack-'));
    await write(root, {
      'go.mod': 'module example.com/accepted\n\ngo 1.22\n',
      'plugin.go': 'package main\n\nfunc main() {}\n',
      'empty.txt': '',
    });
    const bytes = async () => collect(packSource(await listSourceFiles(root)));
    const first = await bytes();
    expect((await bytes()).equals(first)).toBe(true);
    const summary = await repackSourceArchive(Readable.from([first]), path.join(root, '..', `${path.basename(root)}.clean.tar`));
    expect(summary).toMatchObject({ module: 'example.com/accepted', files: 3 });
  });
});

describe('packing files: small ones read whole, large ones streamed', () => {
  // 3 MiB: above the size up to which a file is read in one piece.
  const large = randomBytes(3 << 19).toString('hex');

  it('gives every file byte for byte, with its mode, in the listing order', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'plugforge-pack-'));
    await write(root, {
      'go.mod': 'module example.com/sizes\n\ngo 1.22\n',
      'a/large.txt': large,
      'b/run.sh': '#!/bin/sh\n',
      'empty.txt': '',
    });
    await chmod(path.join(root, 'b', 'run.sh'), 0o755);
    const listing = await listSourceFiles(root);
    const entries = await unpack(packSource(listing));
    expect([...entries.keys()]).toEqual(listing.files.map((f) => f.name));
    expect(entries.get('a/large.txt')?.body === large).toBe(true);
    expect(entries.get('b/run.sh')).toMatchObject({ body: '#!/bin/sh\n', mode: 0o755 });
    expect(entries.get('go.mod')?.mode).toBe(0o644);
    expect(entries.get('empty.txt')?.body).toBe('');
  });

  for (const [label, content] of [
    ['small', 'package main\n'],
    ['large', large],
  ] as const) {
    it(`refuses a ${label} file that changed size after the listing`, async () => {
      const root = await mkdtemp(path.join(os.tmpdir(), 'plugforge-pack-'));
      await write(root, { 'go.mod': 'module example.com/sizes\n\ngo 1.22\n', 'f.txt': content });
      const listing = await listSourceFiles(root);
      await writeFile(path.join(root, 'f.txt'), `${content}more`);
      await expect(collect(packSource(listing))).rejects.toThrow(/f\.txt changed size while packing .*run the build again/);
    });

    it(`refuses a ${label} file swapped for a link after the listing, without reading the link's target`, async () => {
      const outside = await mkdtemp(path.join(os.tmpdir(), 'plugforge-outside-'));
      await writeFile(path.join(outside, 'secret.txt'), SECRET);
      const root = await mkdtemp(path.join(os.tmpdir(), 'plugforge-pack-'));
      await write(root, { 'go.mod': 'module example.com/sizes\n\ngo 1.22\n', 'f.txt': content });
      const listing = await listSourceFiles(root);
      await rm(path.join(root, 'f.txt'));
      await symlink(path.join(outside, 'secret.txt'), path.join(root, 'f.txt'));
      await expect(collect(packSource(listing))).rejects.toThrow(/f\.txt became a symbolic link while packing/);
    });
  }
});

describe('.plugforgeignore rules', () => {
  const rules = IgnoreRules.from(
    ['*.tmp', '!important.tmp', 'docs/', '/only-root.txt', 'a/**/z.txt', 'cache/**', '\\#literal', 'file[0-9].go', 'trailing   '].join(
      '\n',
    ),
  );
  const cases: [string, boolean, boolean][] = [
    ['x.tmp', false, true],
    ['deep/er/x.tmp', false, true],
    ['important.tmp', false, false],
    ['docs', true, true],
    ['sub/docs', true, true],
    ['docs', false, false],
    ['only-root.txt', false, true],
    ['sub/only-root.txt', false, false],
    ['a/z.txt', false, true],
    ['a/b/c/z.txt', false, true],
    ['b/a/z.txt', false, false],
    ['cache/x/y', false, true],
    ['#literal', false, true],
    ['file7.go', false, true],
    ['fileX.go', false, false],
    ['trailing', false, true],
    ['.git', true, true],
    ['.git', false, true],
    ['node_modules', true, true],
    ['dist', true, true],
    ['sub/dist', true, false],
    ['plugin.so', false, true],
    ['sub/plugin.so', false, false],
    ['plugin.go', false, false],
  ];
  for (const [name, isDir, ignored] of cases) {
    it(`${ignored ? 'leaves out' : 'keeps'} ${name}${isDir ? '/' : ''}`, () => {
      expect(rules.ignores(name, isDir)).toBe(ignored);
    });
  }

  it('skips comments and blank lines, and knows where each rule came from', () => {
    const parsed = parseIgnoreFile('# comment\n\n*.o\n!keep.o\n');
    expect(parsed.map((r) => [r.pattern, r.negate, r.source])).toEqual([
      ['*.o', false, '.plugforgeignore:3'],
      ['!keep.o', true, '.plugforgeignore:4'],
    ]);
  });

  it('can bring back a built-in one: !/dist/ uploads dist/', () => {
    expect(IgnoreRules.from('!/dist/\n').ignores('dist', true)).toBe(false);
  });
});

describe('the log event stream', () => {
  it('splits events across chunk boundaries and skips comments', () => {
    const events: { event: string; data: string }[] = [];
    const parser = new EventStreamParser((e) => events.push(e));
    const text = ': keep-alive\n\nevent: log\ndata: [linux-386] one\n\nevent: log\ndata: \n\nevent: end\ndata: {"status":"succeeded"}\n\n';
    for (let i = 0; i < text.length; i += 7) parser.push(text.slice(i, i + 7));
    expect(events).toEqual([
      { event: 'log', data: '[linux-386] one' },
      { event: 'log', data: '' },
      { event: 'end', data: '{"status":"succeeded"}' },
    ]);
  });
});
