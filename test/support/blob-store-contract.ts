import { createHash } from 'node:crypto';
import { access, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/store/blob-store.js';

/**
 * The BlobStore contract (src/store/blob-store.ts), run against each implementation on its
 * real backend: test/s3-blob-store.test.ts runs it on FsBlobStore and on S3BlobStore.
 */
export interface ContractSubject {
  store: BlobStore;
  /** Everything the backend holds (files, keys, unfinished uploads), blobs and temps included. */
  everything(): Promise<string[]>;
}

const bytesOf = (text: string | Buffer) => Readable.from([Buffer.isBuffer(text) ? text : Buffer.from(text)]);
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** A stream that sends `bytes`, then fails as a connection cut would. */
function breakingStream(bytes: number, message: string): Readable {
  const stream = new Readable({ read() {} });
  stream.push(Buffer.alloc(bytes, 7));
  setTimeout(() => stream.destroy(new Error(message)), 50);
  return stream;
}

export function blobStoreContract(name: string, open: () => Promise<ContractSubject>): void {
  describe(`${name}: the BlobStore contract`, () => {
    let subject: ContractSubject;
    let store: BlobStore;

    beforeEach(async () => {
      subject = await open();
      store = subject.store;
    });

    it('stores a stream and gives it back by its sha256, with its size', async () => {
      const content = 'package main\n\nfunc main() {}\n';
      const blob = await store.put(bytesOf(content));
      expect(blob).toEqual({ sha256: sha256(content), size: Buffer.byteLength(content) });
      expect(await store.has(blob.sha256)).toBe(true);
      const opened = await store.open(blob.sha256);
      expect(opened.size).toBe(blob.size);
      expect((await readAll(opened.stream)).toString()).toBe(content);
    });

    it('stores an empty blob and a large one (12 MiB, sent in two chunks)', async () => {
      const empty = await store.put(bytesOf(''));
      expect(empty).toEqual({ sha256: sha256(''), size: 0 });
      expect((await readAll((await store.open(empty.sha256)).stream)).length).toBe(0);
      const big = Buffer.alloc(12 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
      const blob = await store.put(Readable.from([big.subarray(0, 5_000_000), big.subarray(5_000_000)]));
      expect(blob).toEqual({ sha256: sha256(big), size: big.length });
      expect(sha256(await readAll((await store.open(blob.sha256)).stream))).toBe(blob.sha256);
    });

    it('stores the same content twice as one blob', async () => {
      const first = await store.put(bytesOf('the same bytes'));
      const second = await store.put(bytesOf('the same bytes'));
      expect(second).toEqual(first);
      expect((await collect(store.list())).map((b) => b.sha256)).toEqual([first.sha256]);
      expect(await collect(store.listTemps())).toEqual([]);
    });

    it('stores the same content from two puts at once as one complete blob', async () => {
      const content = Buffer.alloc(3 * 1024 * 1024, 'concurrent ');
      const [a, b] = await Promise.all([store.put(Readable.from([content])), store.put(Readable.from([content]))]);
      expect(a).toEqual({ sha256: sha256(content), size: content.length });
      expect(b).toEqual(a);
      expect(sha256(await readAll((await store.open(a.sha256)).stream))).toBe(a.sha256);
      expect((await collect(store.list())).map((x) => x.sha256)).toEqual([a.sha256]);
      expect(await collect(store.listTemps())).toEqual([]);
    });

    it('keeps nothing of a put over maxBytes', async () => {
      await expect(store.put(bytesOf(Buffer.alloc(5000, 1)), { maxBytes: 4096 })).rejects.toMatchObject({
        code: 'blob_too_large',
        status: 413,
      });
      expect(await subject.everything()).toEqual([]);
    });

    it('keeps nothing of a put whose stream fails midway', async () => {
      await expect(store.put(breakingStream(256 * 1024, 'connection reset by the uploader'))).rejects.toThrow(
        'connection reset by the uploader',
      );
      expect(await subject.everything()).toEqual([]);
    });

    it('rejects opening a blob it does not hold with a not-found PlugforgeError', async () => {
      const missing = sha256('never stored');
      expect(await store.has(missing)).toBe(false);
      await expect(store.open(missing)).rejects.toMatchObject({ name: 'PlugforgeError', code: 'blob_missing', status: 500 });
    });

    it('adopts a finished temp file under its sha256, and the temp file is gone', async () => {
      const temp = store.tempPath('source');
      await writeFile(temp, 'an uploaded source archive');
      expect((await collect(store.listTemps())).map((t) => t.path)).toEqual([temp]);
      const blob = { sha256: sha256('an uploaded source archive'), size: 26 };
      await store.adopt(temp, blob);
      await expect(access(temp)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await readAll((await store.open(blob.sha256)).stream)).toString()).toBe('an uploaded source archive');
      expect(await collect(store.listTemps())).toEqual([]);
    });

    it('discards a temp file, and a second discard is harmless', async () => {
      const temp = store.tempPath('source');
      await writeFile(temp, 'an upload that was refused');
      await store.discard(temp);
      await store.discard(temp);
      await expect(access(temp)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await subject.everything()).toEqual([]);
    });

    it('lists its blobs with size and time written, and its temp files', async () => {
      const start = Date.now();
      const a = await store.put(bytesOf('blob a'));
      const b = await store.put(bytesOf('blob b, longer'));
      const temp = store.tempPath('upload');
      await writeFile(temp, 'arriving');
      const end = Date.now();
      const listed = (await collect(store.list())).sort((x, y) => x.sha256.localeCompare(y.sha256));
      expect(listed.map(({ sha256, size }) => ({ sha256, size }))).toEqual([a, b].sort((x, y) => x.sha256.localeCompare(y.sha256)));
      // S3's times have a resolution of a second at best.
      for (const blob of listed) expect(blob.writtenAt).toBeGreaterThanOrEqual(Math.floor(start / 1000) * 1000 - 1000);
      for (const blob of listed) expect(blob.writtenAt).toBeLessThanOrEqual(end + 1000);
      const temps = await collect(store.listTemps());
      expect(temps.map((t) => t.path)).toEqual([temp]);
      expect(temps[0]?.writtenAt).toBeGreaterThanOrEqual(start - 1000);
    });

    it('removes a blob written before writtenBefore, keeps one written after, and removes idempotently', async () => {
      const blob = await store.put(bytesOf('a blob for remove'));
      expect(await store.remove(blob.sha256, Date.now() - 60_000)).toBe(0);
      expect(await store.has(blob.sha256)).toBe(true);
      expect(await store.remove(blob.sha256, Date.now() + 5_000)).toBe(blob.size);
      expect(await store.has(blob.sha256)).toBe(false);
      expect(await store.remove(blob.sha256, Date.now() + 5_000)).toBe(0);
    });

    it('keeps a blob stored again after writtenBefore, and removes one that was not', async () => {
      const again = await store.put(bytesOf('stored again'));
      const once = await store.put(bytesOf('stored once'));
      // Waits for time to pass, kept: writtenBefore must lie past the first writes as the
      // backend's clock records them (S3's Last-Modified counts whole seconds, and remove
      // allows a second of slack), and the second write past writtenBefore (a filesystem's
      // timestamps come from a coarse clock, a few ms behind Date.now()). No condition to poll.
      await sleep(2_100);
      const writtenBefore = Date.now();
      await sleep(50);
      await store.put(bytesOf('stored again'));
      expect(await store.remove(again.sha256, writtenBefore)).toBe(0);
      expect(await store.has(again.sha256)).toBe(true);
      expect(await store.remove(once.sha256, writtenBefore)).toBe(once.size);
      expect(await store.has(once.sha256)).toBe(false);
    });
  });
}
