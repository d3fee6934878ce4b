import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ArchiveError, repackSourceArchive, type ArchiveLimits, type SourceSummary } from '../src/archive/archive-validator.js';
import { inflatedByteBudget, resolveArchiveLimits } from '../src/archive/archive-limits.js';
import { parseGoMod } from '../src/archive/go-mod.js';
import { paxEntry, rawTar, type RawEntry } from './support/raw-tar.js';

const GO_MOD = 'module example.com/hello\n\ngo 1.22\n';

interface SpecEntry {
  name: string;
  content?: string | Buffer;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device' | 'block-device';
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: Date;
  linkname?: string;
}

/** A tar (uncompressed) of `entries`, written by tar-stream as an ordinary client would. */
async function tarOf(entries: SpecEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const done = (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  })();
  for (const { content, ...header } of entries) {
    const type = header.type ?? 'file';
    if (type === 'file') pack.entry({ ...header, type }, content ?? '');
    else pack.entry({ ...header, type });
  }
  pack.finalize();
  return done;
}

async function tarGzOf(entries: SpecEntry[]): Promise<Buffer> {
  return gzipSync(await tarOf(entries));
}

const goModOnly: SpecEntry[] = [{ name: 'go.mod', content: GO_MOD }];

let dir: string;
let dest: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plugforge-archive-'));
  dest = join(dir, 'source.tar');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function repack(data: Buffer, limits?: Partial<ArchiveLimits>): Promise<SourceSummary> {
  return repackSourceArchive(Readable.from([data]), dest, limits);
}

/** Rejects with `code`, and leaves nothing behind: no destination, no partial file. */
async function expectRefused(data: Buffer | Promise<Buffer>, code: string, limits?: Partial<ArchiveLimits>): Promise<ArchiveError> {
  const error = await repack(await data, limits).then(
    () => {
      throw new Error(`expected ${code}, but the archive was accepted`);
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ArchiveError);
  const archiveError = error as ArchiveError;
  expect({ code: archiveError.code, message: archiveError.message }).toMatchObject({ code });
  expect(archiveError.message.length).toBeGreaterThan(20);
  expect(await readdir(dir)).toEqual([]);
  return archiveError;
}

interface CleanEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: string;
  content: string;
}

async function readCleanTar(path: string): Promise<CleanEntry[]> {
  const extract = tar.extract();
  const entries: CleanEntry[] = [];
  const reading = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const h = entry.header;
      entries.push({
        name: h.name,
        type: h.type,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        uname: h.uname,
        gname: h.gname,
        mtime: h.mtime.toISOString(),
        content: Buffer.concat(chunks).toString(),
      });
    }
  })();
  extract.end(await readFile(path));
  await reading;
  return entries;
}

describe('repackSourceArchive: accepted archives', () => {
  it('repacks nested directories into a clean tar and summarises them', async () => {
    const goMod = 'module "example.com/hello" // quoted\n\ngo 1.22.1\n\ntoolchain go1.22.12\n';
    const upload = await tarGzOf([
      { name: './', type: 'directory', mode: 0o775, uid: 1000, uname: 'alice' },
      { name: './go.mod', content: goMod, mode: 0o664, uid: 1000, gid: 1000, uname: 'alice', gname: 'staff' },
      { name: './go.sum', content: 'sum\n', mode: 0o600 },
      { name: './cmd/', type: 'directory', mode: 0o700 },
      { name: './cmd/tool/', type: 'directory' },
      { name: './cmd/tool/main.go', content: 'package main\n', mode: 0o640 },
      { name: 'scripts//build.sh', content: '#!/bin/sh\n', mode: 0o744 },
      { name: './internal/./deep/x.go', content: 'package deep\n' },
    ]);
    const summary = await repack(upload);

    const file = await readFile(dest);
    expect(summary).toEqual({
      sha256: createHash('sha256').update(file).digest('hex'),
      size: file.length,
      files: 5,
      directories: 2,
      contentBytes: Buffer.byteLength(goMod) + 4 + 13 + 10 + 13,
      module: 'example.com/hello',
      goDirective: '1.22.1',
      toolchainDirective: 'go1.22.12',
      goMod,
      hasGoSum: true,
      vendored: false,
      // Where a package can be built: directories with .go files, relative to go.mod.
      goDirs: ['cmd/tool', 'internal/deep'],
    });
    const fixed = { uid: 0, gid: 0, uname: '', gname: '', mtime: '2000-01-01T00:00:00.000Z' };
    expect(await readCleanTar(dest)).toEqual([
      { name: 'go.mod', type: 'file', mode: 0o644, content: goMod, ...fixed },
      { name: 'go.sum', type: 'file', mode: 0o644, content: 'sum\n', ...fixed },
      { name: 'cmd/', type: 'directory', mode: 0o755, content: '', ...fixed },
      { name: 'cmd/tool/', type: 'directory', mode: 0o755, content: '', ...fixed },
      { name: 'cmd/tool/main.go', type: 'file', mode: 0o644, content: 'package main\n', ...fixed },
      { name: 'scripts/build.sh', type: 'file', mode: 0o755, content: '#!/bin/sh\n', ...fixed },
      { name: 'internal/deep/x.go', type: 'file', mode: 0o644, content: 'package deep\n', ...fixed },
    ]);
    expect(await readdir(dir)).toEqual(['source.tar']);
  });

  it('strips a single top-level directory holding go.mod, in a second pass', async () => {
    const inner: SpecEntry[] = [
      { name: 'go.mod', content: GO_MOD },
      { name: 'go.sum', content: 'sum\n' },
      { name: 'vendor/', type: 'directory' },
      { name: 'vendor/modules.txt', content: '# example.com/dep v1.0.0\n' },
      { name: 'plugin.go', content: 'package main\n', mode: 0o755 },
    ];
    const prefixed = await tarGzOf([
      { name: 'myplugin/', type: 'directory' },
      ...inner.map((entry) => ({ ...entry, name: `myplugin/${entry.name}` })),
    ]);
    const summary = await repack(prefixed);
    expect(summary).toMatchObject({ strippedPrefix: 'myplugin/', files: 4, directories: 1, hasGoSum: true, vendored: true });
    // Where a package can be built, relative to go.mod: here only the module root.
    expect(summary.goDirs).toEqual(['']);
    expect((await readCleanTar(dest)).map((entry) => [entry.name, entry.mode])).toEqual([
      ['go.mod', 0o644],
      ['go.sum', 0o644],
      ['vendor/', 0o755],
      ['vendor/modules.txt', 0o644],
      ['plugin.go', 0o755],
    ]);
    expect(await readdir(dir)).toEqual(['source.tar']);

    // The same tree uploaded without the wrapper directory gives the very same bytes.
    await rm(dest);
    const flat = await repack(await tarGzOf(inner));
    expect(flat.strippedPrefix).toBeUndefined();
    expect(flat.sha256).toBe(summary.sha256);
  });

  it('keeps the plugin.json beside go.mod (a Mattermost manifest), at the root or in the single top-level directory', async () => {
    const manifest = '{"id":"com.example.hello"}';
    const atRoot = await repack(
      await tarGzOf([
        { name: 'go.mod', content: GO_MOD },
        { name: 'plugin.json', content: manifest },
        { name: 'sub/plugin.json', content: '{}' },
      ]),
    );
    expect(atRoot.pluginManifest).toBe(manifest);
    await rm(dest);
    const nested = await repack(
      await tarGzOf([
        { name: 'p/go.mod', content: GO_MOD },
        { name: 'p/plugin.json', content: manifest },
      ]),
    );
    expect(nested.pluginManifest).toBe(manifest);
    await rm(dest);
    // Elsewhere, or too large to be a manifest, it is just a file of the source.
    const deeper = await repack(
      await tarGzOf([
        { name: 'go.mod', content: GO_MOD },
        { name: 'sub/plugin.json', content: manifest },
      ]),
    );
    expect(deeper.pluginManifest).toBeUndefined();
    await rm(dest);
    const huge = await repack(
      await tarGzOf([
        { name: 'go.mod', content: GO_MOD },
        { name: 'plugin.json', content: `{"id":"x","pad":"${'x'.repeat(70_000)}"}` },
      ]),
    );
    expect(huge.pluginManifest).toBeUndefined();
  });

  it('does not strip when the root has its own go.mod', async () => {
    const summary = await repack(
      await tarGzOf([
        { name: 'go.mod', content: GO_MOD },
        { name: 'sub/go.mod', content: 'module other\n' },
      ]),
    );
    expect(summary.strippedPrefix).toBeUndefined();
    expect(summary.module).toBe('example.com/hello');
  });

  it('detects a vendored module only from vendor/modules.txt at the module root', async () => {
    const vendored = await repack(
      await tarGzOf([
        ...goModOnly,
        { name: 'vendor/modules.txt', content: '# x\n' },
        { name: 'vendor/example.com/x/x.go', content: 'package x\n' },
      ]),
    );
    expect(vendored).toMatchObject({ vendored: true, hasGoSum: false });
    await rm(dest);
    const notVendored = await repack(await tarGzOf([...goModOnly, { name: 'sub/vendor/modules.txt', content: '# x\n' }]));
    expect(notVendored.vendored).toBe(false);
  });

  it('gives the same sha256 for the same files whatever their owners, mtimes and permission details', async () => {
    const a = await tarGzOf([
      {
        name: 'go.mod',
        content: GO_MOD,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        uname: 'alice',
        gname: 'alice',
        mtime: new Date('2024-05-01T10:00:00Z'),
      },
      { name: 'src/', type: 'directory', mode: 0o755, uid: 1000 },
      { name: 'src/run.sh', content: 'echo\n', mode: 0o755, mtime: new Date('2024-05-01T10:00:00Z') },
    ]);
    const b = await tarGzOf([
      {
        name: './go.mod',
        content: GO_MOD,
        mode: 0o600,
        uid: 0,
        gid: 0,
        uname: 'root',
        gname: 'wheel',
        mtime: new Date('2019-01-01T00:00:00Z'),
      },
      { name: './src', type: 'directory', mode: 0o700, uid: 501 },
      { name: './src/run.sh', content: 'echo\n', mode: 0o100, mtime: new Date('2030-01-01T00:00:00Z') },
    ]);
    const first = await repack(a);
    await rm(dest);
    const second = await repack(b);
    expect(second.sha256).toBe(first.sha256);

    await rm(dest);
    const changed = await repack(
      await tarGzOf([
        { name: 'go.mod', content: GO_MOD },
        { name: 'src/', type: 'directory' },
        { name: 'src/run.sh', content: 'echo\n', mode: 0o644 },
      ]),
    );
    expect(changed.sha256).not.toBe(first.sha256);
  });

  it('merges a repeated directory entry, including one first implied by a file inside it', async () => {
    const summary = await repack(
      await tarGzOf([
        ...goModOnly,
        { name: 'a/', type: 'directory' },
        { name: 'a/', type: 'directory' },
        { name: 'b/x.go', content: 'package b\n' },
        { name: 'b/', type: 'directory' },
      ]),
    );
    expect(summary.directories).toBe(1);
    expect((await readCleanTar(dest)).map((entry) => entry.name)).toEqual(['go.mod', 'a/', 'b/x.go']);
  });

  it('accepts long names (PAX) and non-ASCII names', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(150)}.go`;
    const summary = await repack(
      await tarGzOf([...goModOnly, { name: long, content: 'package d\n' }, { name: 'ünï/çödé.go', content: 'x' }]),
    );
    expect(summary.files).toBe(3);
    expect((await readCleanTar(dest)).map((entry) => entry.name)).toEqual(['go.mod', long, 'ünï/çödé.go']);
  });

  it('accepts GNU long-name entries', async () => {
    const long = `${'g'.repeat(90)}/${'h'.repeat(90)}.go`;
    const upload = gzipSync(
      rawTar([
        { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
        { name: '././@LongLink', typeflag: 'L', data: Buffer.from(`${long}\0`) },
        { name: long.slice(0, 100), typeflag: '0', data: Buffer.from('package g\n') },
      ]),
    );
    await repack(upload);
    expect((await readCleanTar(dest)).map((entry) => [entry.name, entry.content])).toEqual([
      ['go.mod', GO_MOD],
      [long, 'package g\n'],
    ]);
  });

  it('streams a large file through without changing it', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024 + 3, 'go');
    const summary = await repack(await tarGzOf([...goModOnly, { name: 'blob.bin', content: big }]));
    expect(summary.contentBytes).toBe(big.length + GO_MOD.length);
    const clean = await readFile(dest);
    // header of go.mod + its data block + header of blob.bin, then the blob itself
    expect(clean.subarray(3 * 512, 3 * 512 + big.length).equals(big)).toBe(true);
  });

  it('keeps the last entry of a tar that lacks end-of-archive blocks', async () => {
    const upload = gzipSync(
      rawTar(
        [
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          { name: 'empty.txt', typeflag: '0' },
        ],
        { end: false },
      ),
    );
    await repack(upload);
    expect((await readCleanTar(dest)).map((entry) => entry.name)).toEqual(['go.mod', 'empty.txt']);
  });

  it('accepts a little zero padding after the gzip data', async () => {
    const summary = await repack(Buffer.concat([await tarGzOf(goModOnly), Buffer.alloc(4096)]));
    expect(summary.files).toBe(1);
  });

  it('still checks the last entry of a tar that lacks end-of-archive blocks', async () => {
    await expectRefused(
      gzipSync(
        rawTar(
          [
            { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
            { name: 'l', typeflag: '2', linkname: '/' },
          ],
          { end: false },
        ),
      ),
      'archive_symlink',
    );
  });

  it("leaves the caller's input stream open when it refuses the archive midway", async () => {
    const input = new PassThrough();
    input.write(Buffer.from('plain text, not gzip'));
    await expect(repackSourceArchive(input, dest)).rejects.toMatchObject({ code: 'archive_not_gzip' });
    expect(input.destroyed).toBe(false);
    expect(input.listenerCount('error')).toBe(0);
    expect(input.listenerCount('data')).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('repackSourceArchive: refused uploads', () => {
  it('archive_empty: a zero-byte upload', async () => {
    await expectRefused(Buffer.alloc(0), 'archive_empty');
  });

  it('archive_not_gzip: plain text', async () => {
    const err = await expectRefused(Buffer.from('module example.com/hello\n'), 'archive_not_gzip');
    expect(err.status).toBe(400);
  });

  it('archive_not_gzip: an uncompressed tar', async () => {
    await expectRefused(tarOf(goModOnly), 'archive_not_gzip');
  });

  it('archive_truncated: the gzip cut in half', async () => {
    const whole = await tarGzOf([
      ...goModOnly,
      { name: 'data.bin', content: Buffer.from(createHash('sha512').update('x').digest('hex').repeat(400)) },
    ]);
    await expectRefused(whole.subarray(0, Math.floor(whole.length / 2)), 'archive_truncated');
  });

  it('archive_truncated: complete gzip of a tar cut inside an entry', async () => {
    const tarBytes = await tarOf([...goModOnly, { name: 'data.txt', content: 'y'.repeat(5000) }]);
    await expectRefused(gzipSync(tarBytes.subarray(0, 2048)), 'archive_truncated');
  });

  it('archive_truncated: the upload stream fails midway', async () => {
    const whole = await tarGzOf([...goModOnly, { name: 'data.txt', content: 'z'.repeat(100_000) }]);
    const input = new PassThrough();
    input.write(whole.subarray(0, 100));
    setTimeout(() => input.destroy(new Error('socket hang up')), 10);
    const error = await repackSourceArchive(input, dest).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'archive_truncated' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('archive_truncated: the upload stream is destroyed without an error', async () => {
    const whole = await tarGzOf([...goModOnly, { name: 'data.txt', content: 'z'.repeat(100_000) }]);
    const input = new PassThrough();
    input.write(whole.subarray(0, 100));
    setTimeout(() => input.destroy(), 10);
    const error = await repackSourceArchive(input, dest).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'archive_truncated' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('archive_corrupt: gzip data with a broken checksum', async () => {
    const whole = await tarGzOf(goModOnly);
    const broken = Buffer.from(whole);
    broken[broken.length - 6] = (broken[broken.length - 6] as number) ^ 0xff; // inside the CRC32 trailer
    await expectRefused(broken, 'archive_corrupt');
  });

  it('archive_not_tar: gzip of text', async () => {
    await expectRefused(gzipSync(Buffer.from('just some text\n'.repeat(100))), 'archive_not_tar');
  });

  it('archive_not_tar: gzip of a few bytes of text', async () => {
    await expectRefused(gzipSync(Buffer.from('hello')), 'archive_not_tar');
  });

  it('archive_not_tar: a corrupt header after good entries', async () => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          { name: 'x.go', typeflag: '0', badChecksum: true },
        ]),
      ),
      'archive_not_tar',
    );
  });

  it('archive_empty: a tar with no entries', async () => {
    await expectRefused(tarGzOf([]), 'archive_empty');
  });

  it('archive_empty: a tar with only directories', async () => {
    await expectRefused(
      tarGzOf([
        { name: 'a/', type: 'directory' },
        { name: 'a/b/', type: 'directory' },
      ]),
      'archive_empty',
    );
  });

  it('archive_symlink', async () => {
    const err = await expectRefused(tarGzOf([...goModOnly, { name: 'link', type: 'symlink', linkname: '/etc/passwd' }]), 'archive_symlink');
    expect(err.message).toContain('"link"');
    expect(err.details).toEqual({ path: 'link' });
  });

  it('archive_hardlink', async () => {
    await expectRefused(tarGzOf([...goModOnly, { name: 'again.mod', type: 'link', linkname: 'go.mod' }]), 'archive_hardlink');
  });

  it('archive_device: character device', async () => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          { name: 'null', typeflag: '3' },
        ]),
      ),
      'archive_device',
    );
  });

  it('archive_device: block device', async () => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'sda', typeflag: '4' },
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
        ]),
      ),
      'archive_device',
    );
  });

  it('archive_fifo', async () => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          { name: 'pipe', typeflag: '6' },
        ]),
      ),
      'archive_fifo',
    );
  });

  it.each([
    ['contiguous file', { name: 'c.go', typeflag: '7', data: Buffer.from('package c\n') }],
    ['GNU sparse file', { name: 's.bin', typeflag: 'S', data: Buffer.alloc(512) }],
    ['unknown type flag', { name: 'v', typeflag: 'Z' }],
    ['directory carrying data', { name: 'd/', typeflag: '5', data: Buffer.alloc(512, 1) }],
  ] as [string, RawEntry][])('archive_unsupported_entry: %s', async (_label, entry) => {
    await expectRefused(
      gzipSync(rawTar([{ name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) }, entry])),
      'archive_unsupported_entry',
    );
  });

  it('archive_unsupported_entry: PAX sparse file', async () => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          paxEntry({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'big.bin', 'GNU.sparse.realsize': '1000000' }),
          { name: 'GNUSparseFile.0/big.bin', typeflag: '0', data: Buffer.alloc(512) },
        ]),
      ),
      'archive_unsupported_entry',
    );
  });

  it('archive_absolute_path', async () => {
    await expectRefused(tarGzOf([...goModOnly, { name: '/etc/cron.d/x', content: 'x' }]), 'archive_absolute_path');
  });

  it.each(['../escape.go', 'a/../../b.go', 'a/b/..', '..'])('archive_parent_path: %s', async (name) => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          { name, typeflag: '0', data: Buffer.from('x') },
        ]),
      ),
      'archive_parent_path',
    );
  });

  it('archive_parent_path: a ".." hidden in a PAX path', async () => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          paxEntry({ path: 'ok/../../x' }),
          { name: 'innocent', typeflag: '0' },
        ]),
      ),
      'archive_parent_path',
    );
  });

  it.each([
    ['backslash', 'a\\b.go'],
    ['control character', 'a\u0001b.go'],
    ['DEL', 'a\u007fb.go'],
    ['newline', 'evil\nname.go'],
  ])('archive_bad_name: %s', async (_label, name) => {
    await expectRefused(tarGzOf([...goModOnly, { name, content: 'x' }]), 'archive_bad_name');
  });

  it('archive_bad_name: NUL inside a PAX path', async () => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          paxEntry({ path: Buffer.from('a\u0000b.go') }),
          { name: 'x', typeflag: '0' },
        ]),
      ),
      'archive_bad_name',
    );
  });

  it('archive_bad_name: invalid UTF-8', async () => {
    await expectRefused(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          { name: Buffer.from([0x61, 0xff, 0x62]), typeflag: '0' },
        ]),
      ),
      'archive_bad_name',
    );
  });

  it('archive_bad_name: a file whose name normalises to nothing', async () => {
    await expectRefused(
      gzipSync(
        rawTar([{ name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) }, paxEntry({ path: './/' }), { name: 'x', typeflag: '0' }]),
      ),
      'archive_bad_name',
    );
  });

  it('archive_name_too_long', async () => {
    const name = `${'a'.repeat(60)}/`.repeat(10) + 'x.go';
    const err = await expectRefused(tarGzOf([...goModOnly, { name, content: 'x' }]), 'archive_name_too_long', { maxNameLength: 500 });
    expect(err.details).toMatchObject({ limit: 500 });
  });

  it('archive_name_too_long: one component over 255 bytes', async () => {
    await expectRefused(tarGzOf([...goModOnly, { name: `${'n'.repeat(256)}.go`, content: 'x' }]), 'archive_name_too_long');
  });

  it('archive_too_deep', async () => {
    await expectRefused(tarGzOf([...goModOnly, { name: `${'d/'.repeat(8)}x.go`, content: 'x' }]), 'archive_too_deep', { maxDepth: 8 });
  });

  it('archive_too_many_entries', async () => {
    const entries: SpecEntry[] = [...goModOnly];
    for (let i = 0; i < 20; i++) entries.push({ name: `f${i}.go`, content: 'x' });
    await expectRefused(tarGzOf(entries), 'archive_too_many_entries', { maxEntries: 20 });
  });

  it('archive_file_too_large: refused at the header, status 413', async () => {
    // The header claims 100 MiB; the data is never sent, so only the header can have refused it.
    const upload = gzipSync(
      rawTar(
        [
          { name: 'go.mod', typeflag: '0', data: Buffer.from(GO_MOD) },
          { name: 'huge.bin', typeflag: '0', size: 100 * 1024 * 1024 },
        ],
        { end: false },
      ),
    );
    const err = await expectRefused(upload, 'archive_file_too_large', { maxFileBytes: 1024 * 1024 });
    expect(err.status).toBe(413);
    expect(err.message).toContain('huge.bin');
  });

  it('archive_too_large: files adding up past the total, status 413', async () => {
    const chunk = Buffer.alloc(600 * 1024, 'a');
    const err = await expectRefused(
      tarGzOf([...goModOnly, { name: 'a.bin', content: chunk }, { name: 'b.bin', content: chunk }]),
      'archive_too_large',
      { maxTotalBytes: 1024 * 1024 },
    );
    expect(err.status).toBe(413);
  });

  it('archive_too_large: a gzip bomb is cut off while inflating', async () => {
    // 1 GiB of zeros: a 16 MiB run of zeros streamed through createGzip, and that gzip member
    // repeated 64 times (gunzip reads concatenated members as one stream). About 1 MB.
    const gzipped: Buffer[] = [];
    await pipeline(
      Readable.from(
        (function* () {
          for (let i = 0; i < 16; i++) yield Buffer.alloc(1024 * 1024);
        })(),
      ),
      createGzip({ level: 9 }),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) gzipped.push(chunk);
      },
    );
    const member = Buffer.concat(gzipped);
    const bomb = Buffer.concat(Array.from({ length: 64 }, () => member));
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);

    // Zero blocks are what a tar parser skips as padding, so no header check can stop this.
    const limits = { maxTotalBytes: 10 * 1024 * 1024, maxEntries: 100 };
    const started = Date.now();
    const err = await expectRefused(bomb, 'archive_too_large', limits);
    const elapsed = Date.now() - started;

    const budget = inflatedByteBudget(resolveArchiveLimits(limits));
    expect(err.status).toBe(413);
    expect(err.details?.limit).toBe(budget);
    const inflated = err.details?.inflatedBytes as number;
    expect(inflated).toBeGreaterThan(budget);
    expect(inflated).toBeLessThan(budget + 1024 * 1024);
    expect(inflated).toBeLessThan((1024 * 1024 * 1024) / 50);
    expect(elapsed).toBeLessThan(2000);
  });

  it('archive_too_large: endless gzip padding that never inflates', async () => {
    // gunzip skips zero bytes after a gzip member without producing output, so only the
    // compressed byte count can stop this.
    const upload = Buffer.concat([await tarGzOf(goModOnly), Buffer.alloc(3 * 1024 * 1024)]);
    const err = await expectRefused(upload, 'archive_too_large', { maxTotalBytes: 64 * 1024, maxEntries: 4 });
    expect(err.status).toBe(413);
  });

  it('archive_corrupt: junk after the gzip data', async () => {
    await expectRefused(Buffer.concat([await tarGzOf(goModOnly), Buffer.from('trailing junk')]), 'archive_corrupt');
  });

  it('archive_duplicate_path: the same file twice', async () => {
    const err = await expectRefused(
      tarGzOf([...goModOnly, { name: 'a.go', content: '1' }, { name: './a.go', content: '2' }]),
      'archive_duplicate_path',
    );
    expect(err.message).toContain('"a.go"');
  });

  it('archive_duplicate_path: names differing only in case', async () => {
    await expectRefused(
      tarGzOf([...goModOnly, { name: 'Main.go', content: '1' }, { name: 'main.go', content: '2' }]),
      'archive_duplicate_path',
    );
  });

  it('archive_duplicate_path: directories differing only in case', async () => {
    await expectRefused(
      tarGzOf([...goModOnly, { name: 'pkg/a.go', content: '1' }, { name: 'PKG/b.go', content: '2' }]),
      'archive_duplicate_path',
    );
  });

  it('archive_duplicate_path: a file, then a directory of the same name', async () => {
    await expectRefused(tarGzOf([...goModOnly, { name: 'x', content: '1' }, { name: 'x/', type: 'directory' }]), 'archive_duplicate_path');
  });

  it('archive_duplicate_path: a file used as the parent of another entry', async () => {
    await expectRefused(tarGzOf([...goModOnly, { name: 'x', content: '1' }, { name: 'x/y.go', content: '2' }]), 'archive_duplicate_path');
  });

  it('archive_duplicate_path: a file where a directory was implied', async () => {
    await expectRefused(tarGzOf([...goModOnly, { name: 'x/y.go', content: '1' }, { name: 'x', content: '2' }]), 'archive_duplicate_path');
  });

  it('archive_no_go_mod: no go.mod anywhere usable', async () => {
    await expectRefused(tarGzOf([{ name: 'main.go', content: 'package main\n' }]), 'archive_no_go_mod');
  });

  it('archive_no_go_mod: go.mod in one of two top-level directories', async () => {
    await expectRefused(
      tarGzOf([
        { name: 'a/go.mod', content: GO_MOD },
        { name: 'b/main.go', content: 'package main\n' },
      ]),
      'archive_no_go_mod',
    );
  });

  it('archive_no_go_mod: go.mod only two levels down', async () => {
    await expectRefused(tarGzOf([{ name: 'a/b/go.mod', content: GO_MOD }]), 'archive_no_go_mod');
  });

  it('archive_bad_go_mod: no module line', async () => {
    const err = await expectRefused(tarGzOf([{ name: 'go.mod', content: 'go 1.22\n' }]), 'archive_bad_go_mod');
    expect(err.message).toContain('no module directive');
  });

  it('archive_bad_go_mod: an invalid module path', async () => {
    await expectRefused(tarGzOf([{ name: 'go.mod', content: 'module exa mple\n' }]), 'archive_bad_go_mod');
  });

  it('archive_bad_go_mod: go.mod over 64 KiB', async () => {
    await expectRefused(tarGzOf([{ name: 'go.mod', content: `${GO_MOD}${'// padding\n'.repeat(7000)}` }]), 'archive_bad_go_mod');
  });

  it('archive_bad_go_mod: over 64 KiB in the top-level directory that would be stripped', async () => {
    await expectRefused(tarGzOf([{ name: 'p/go.mod', content: `${GO_MOD}${'// padding\n'.repeat(7000)}` }]), 'archive_bad_go_mod');
  });

  it('does not leave a partial file when the destination directory is missing', async () => {
    const error = await repackSourceArchive(Readable.from([await tarGzOf(goModOnly)]), join(dir, 'missing', 'x.tar')).catch(
      (err: unknown) => err,
    );
    expect(error).toMatchObject({ code: 'archive_repack_failed', status: 500, retryable: true });
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses limits that are not positive integers', async () => {
    await expect(repackSourceArchive(Readable.from([Buffer.alloc(0)]), dest, { maxEntries: 0 })).rejects.toThrow(RangeError);
  });
});

describe('parseGoMod', () => {
  it('reads module, go, toolchain and requirements', () => {
    expect(parseGoMod('module example.com/a\n\ngo 1.22\n\ntoolchain go1.22.12\n\nrequire example.com/b v1.0.0\n')).toEqual({
      module: 'example.com/a',
      go: '1.22',
      toolchain: 'go1.22.12',
      requires: [{ path: 'example.com/b', version: 'v1.0.0' }],
      replaced: [],
    });
  });

  it('handles quoted and raw module paths, comments, CRLF and a BOM', () => {
    expect(parseGoMod('\ufeff// header comment\r\nmodule "github.com/gotify/plugin"// trailing\r\ngo 1.21.3 // patch\r\n')).toEqual({
      module: 'github.com/gotify/plugin',
      go: '1.21.3',
      requires: [],
      replaced: [],
    });
    expect(parseGoMod('module `example.com/raw`\n')).toEqual({ module: 'example.com/raw', requires: [], replaced: [] });
  });

  it('reads directives in blocks, requirements and replaced paths, and skips other blocks', () => {
    const text =
      'module (\n\texample.com/blocked\n)\n\nrequire (\n\tmodule.example/x v1.0.0 // module look-alike\n\tgo.example/y v2.0.0+incompatible\n)\n\nreplace example.com/z => ./z\n\nexclude (\n\texample.com/q v0.1.0\n)\n';
    expect(parseGoMod(text)).toEqual({
      module: 'example.com/blocked',
      requires: [
        { path: 'module.example/x', version: 'v1.0.0' },
        { path: 'go.example/y', version: 'v2.0.0+incompatible' },
      ],
      replaced: ['example.com/z'],
    });
  });

  it('ignores a module keyword inside comments', () => {
    expect(() => parseGoMod('// module example.com/commented\ngo 1.22\n')).toThrow(/no module directive/);
  });

  it.each([
    ['no module', 'go 1.22\n', /no module directive/],
    ['two arguments', 'module a b\n', /exactly one argument/],
    ['repeated module', 'module a\nmodule b\n', /repeated module/],
    ['bad path', 'module example.com/../x\n', /invalid module path/],
    ['leading slash', 'module /abs\n', /invalid module path/],
    ['shell characters', 'module "x;rm -rf"\n', /invalid module path/],
    ['unterminated string', 'module "example.com\n', /unterminated/],
    ['bad go version', 'module a\ngo 1.x\n', /invalid go version/],
    ['bad toolchain', 'module a\ntoolchain 1.22\n', /invalid toolchain/],
    ['unclosed block', 'module a\nrequire (\n', /never closed/],
    ['require without a version', 'module a\nrequire example.com/b\n', /require takes a module path and a version/],
    ['require with a bad version', 'module a\nrequire example.com/b 1.0\n', /invalid version/],
  ])('refuses %s', (_label, text, message) => {
    expect(() => parseGoMod(text)).toThrow(message);
  });
});

describe('temporary files', () => {
  it('writes next to the destination and leaves only the destination', async () => {
    await repack(await tarGzOf(goModOnly));
    expect(await readdir(dir)).toEqual(['source.tar']);
    expect((await stat(dest)).size % 512).toBe(0);
  });
});
