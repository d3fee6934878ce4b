import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { putThroughTemp } from './blob-hash.js';
import type { BlobStore, StoredBlob } from './blob-store.js';

const SHA256_RE = /^[0-9a-f]{64}$/;

/** BlobStore on a local (or shared network) filesystem: <dir>/sha256/ab/abcdef…, temp files in <dir>/tmp. */
export class FsBlobStore implements BlobStore {
  constructor(private readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(path.join(this.dir, 'tmp'), { recursive: true });
    await mkdir(path.join(this.dir, 'sha256'), { recursive: true });
  }

  tempPath(hint: string): string {
    return path.join(this.dir, 'tmp', `${hint.replace(/[^a-z0-9-]/gi, '')}-${randomBytes(8).toString('hex')}`);
  }

  private blobPath(sha256: string): string {
    if (!SHA256_RE.test(sha256)) throw new PlugforgeError('bad_blob_id', `"${sha256}" is not a sha256`, { status: 500 });
    return path.join(this.dir, 'sha256', sha256.slice(0, 2), sha256);
  }

  async adopt(tempPath: string, blob: StoredBlob): Promise<void> {
    const dest = this.blobPath(blob.sha256);
    await mkdir(path.dirname(dest), { recursive: true });
    // rename is atomic; a blob already there has the same content.
    await rename(tempPath, dest);
  }

  async put(input: Readable, options: { maxBytes?: number } = {}): Promise<StoredBlob> {
    return putThroughTemp(this, input, options.maxBytes);
  }

  async has(sha256: string): Promise<boolean> {
    return stat(this.blobPath(sha256)).then(
      () => true,
      () => false,
    );
  }

  async open(sha256: string): Promise<{ stream: Readable; size: number }> {
    const p = this.blobPath(sha256);
    const st = await stat(p).catch(() => undefined);
    if (!st) throw new PlugforgeError('blob_missing', `stored blob ${sha256} is missing from the data directory`, { status: 500 });
    return { stream: createReadStream(p), size: st.size };
  }

  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
  }

  async *list(): AsyncGenerator<StoredBlob & { writtenAt: number }> {
    const root = path.join(this.dir, 'sha256');
    for (const shard of await readdir(root)) {
      for (const name of await readdir(path.join(root, shard)).catch(() => [] as string[])) {
        if (!SHA256_RE.test(name)) continue;
        const st = await stat(path.join(root, shard, name)).catch(() => undefined);
        if (st?.isFile()) yield { sha256: name, size: st.size, writtenAt: st.mtimeMs };
      }
    }
  }

  async *listTemps(): AsyncGenerator<{ path: string; writtenAt: number }> {
    const root = path.join(this.dir, 'tmp');
    for (const name of await readdir(root)) {
      const st = await stat(path.join(root, name)).catch(() => undefined);
      if (st?.isFile()) yield { path: path.join(root, name), writtenAt: st.mtimeMs };
    }
  }

  async remove(sha256: string, writtenBefore: number): Promise<number> {
    const p = this.blobPath(sha256);
    // Moved aside first, then looked at: a blob stored again (adopt and put rename a fresh
    // file onto its path) is either the one moved, and is put back, or arrives after the
    // move, and stays. Never an unlink of a path that a writer may just have renamed onto.
    const aside = this.tempPath('removing');
    try {
      await rename(p, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    const st = await stat(aside);
    if (st.mtimeMs >= writtenBefore) {
      await rename(aside, p);
      return 0;
    }
    await rm(aside, { force: true });
    return st.size;
  }
}
