import { closeSync, constants, createReadStream, fstatSync, lstatSync, openSync, readdirSync, readSync, type Stats } from 'node:fs';
import { lstat, open, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { IGNORE_FILE, IgnoreRules } from './ignore-rules.js';

export interface SourceFile {
  /** Relative to the root, `/`-separated: the name in the archive. */
  name: string;
  size: number;
  executable: boolean;
}

/** Something in the directory that is never uploaded, whatever the ignore rules say. */
export interface SkippedEntry {
  name: string;
  kind: 'symlink' | 'special';
}

export interface SourceListing {
  /** The directory, resolved (a DIR given as a symlink is followed once, here). */
  root: string;
  files: SourceFile[];
  /** Sum of the files' sizes. */
  bytes: number;
  skipped: SkippedEntry[];
  /** Files and directories left out by the ignore rules or as outputs. */
  ignored: number;
}

export interface ListOptions {
  /** Directories (absolute) left out whatever the rules say: the --out directory. */
  exclude?: string[];
}

/**
 * Lists what `plugforge build` uploads from `dir`: regular files, minus what the ignore
 * rules leave out. Nothing is read but names and lstat data: a symbolic link is listed as
 * skipped and never followed, so a link pointing out of `dir` cannot leak what it points to.
 */
export async function listSourceFiles(dir: string, options: ListOptions = {}): Promise<SourceListing> {
  const root = await realpath(dir);
  const ignoreText = await readIgnoreFile(root);
  const rules = IgnoreRules.from(ignoreText);
  const excluded = new Set(await Promise.all((options.exclude ?? []).map(async (d) => realpath(d).catch(() => path.resolve(d)))));
  const listing: SourceListing = { root, files: [], bytes: 0, skipped: [], ignored: 0 };

  const walk = (absDir: string, relDir: string): void => {
    // Blocking calls: one thread-pool round trip per file costs more than the work itself.
    const entries = readdirSync(absDir, { withFileTypes: true });
    // Byte order, so the same tree always gives the same archive.
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const name = relDir ? `${relDir}/${entry.name}` : entry.name;
      const abs = path.join(absDir, entry.name);
      if (entry.isSymbolicLink()) {
        listing.skipped.push({ name, kind: 'symlink' });
      } else if (entry.isDirectory()) {
        if (excluded.has(abs) || rules.ignores(name, true)) listing.ignored++;
        else walk(abs, name);
      } else if (entry.isFile()) {
        if (rules.ignores(name, false)) {
          listing.ignored++;
          continue;
        }
        const st = lstatSync(abs);
        listing.files.push({ name, size: st.size, executable: (st.mode & 0o111) !== 0 });
        listing.bytes += st.size;
      } else {
        listing.skipped.push({ name, kind: 'special' });
      }
    }
  };
  walk(root, '');
  return listing;
}

async function readIgnoreFile(root: string): Promise<string | undefined> {
  const file = path.join(root, IGNORE_FILE);
  const st = await lstat(file).catch(() => undefined);
  // Only a regular file: a .plugforgeignore that is a link is not followed either.
  if (!st?.isFile()) return undefined;
  return readFile(file, 'utf8');
}

export interface PackOptions {
  /** File bytes read so far (uncompressed), as packing goes. */
  onFileBytes?: (bytes: number) => void;
}

/** Fixed, so the same tree gives the same archive bytes. */
const MTIME = new Date('2000-01-01T00:00:00Z');

/**
 * The listed files as a gzip'd tar stream, read one file at a time as the consumer pulls:
 * never the whole archive in memory. Each file is opened with O_NOFOLLOW and checked to
 * still be a regular file, so a file swapped for a link after the listing is refused
 * rather than followed. A file that changed size since the listing fails the stream.
 */
export function packSource(listing: SourceListing, options: PackOptions = {}): Readable {
  const pack = tar.pack();
  const gzip = createGzip({ level: GZIP_LEVEL });
  const out = new PassThrough();
  const feed = async (): Promise<void> => {
    for (const file of listing.files) await addFile(pack, listing.root, file, options.onFileBytes);
    pack.finalize();
  };
  feed().catch((err: Error) => pack.destroy(err));
  pipeline(pack as unknown as Readable, new Coalesce(COALESCE_BYTES), gzip, out).catch((err: Error) => out.destroy(err));
  return out;
}

/** Half of level 6's time on a vendored module, for 8% more bytes (docs/decisions.md, "Speed"). */
const GZIP_LEVEL = 4;

/** The tar's small writes (a header, a file, its padding) go to gzip in blocks of this size. */
const COALESCE_BYTES = 64 * 1024;

/**
 * Joins small chunks into blocks of about `size` bytes: each chunk written to gzip is one
 * trip to the thread pool, and a tar of small files is mostly 512-byte headers.
 */
class Coalesce extends Transform {
  private held: Buffer[] = [];
  private heldBytes = 0;

  constructor(private readonly size: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes >= this.size) this.release();
    done();
  }

  override _flush(done: TransformCallback): void {
    this.release();
    done();
  }

  private release(): void {
    if (this.heldBytes === 0) return;
    this.push(this.held.length === 1 ? this.held[0] : Buffer.concat(this.held, this.heldBytes));
    this.held = [];
    this.heldBytes = 0;
  }
}

/**
 * Files up to this size are read whole, with blocking calls: a source tree is mostly small
 * files, and four thread-pool round trips a file (open, stat, read, close) cost more than
 * reading them. Larger files are streamed.
 */
const READ_WHOLE_UP_TO = 1 << 20;

/** O_NONBLOCK: a file replaced by a FIFO since the listing must not block the open. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

async function addFile(pack: tar.Pack, root: string, file: SourceFile, onBytes?: (n: number) => void): Promise<void> {
  const abs = path.join(root, ...file.name.split('/'));
  const header = { name: file.name, size: file.size, mode: file.executable ? 0o755 : 0o644, mtime: MTIME, uid: 0, gid: 0 };
  if (file.size <= READ_WHOLE_UP_TO) {
    const bytes = readWhole(abs, file);
    await new Promise<void>((resolve, reject) => {
      const entry = pack.entry(header, bytes, (err) => (err ? reject(err) : resolve()));
      // The consumer went away (the server answered early): the entry fails with the pack.
      entry.on('error', reject);
    });
    onBytes?.(bytes.length);
    return;
  }
  const handle = await open(abs, OPEN_FLAGS).catch((err: NodeJS.ErrnoException) => {
    throw openError(file, err);
  });
  let handed = false;
  try {
    checkStill(file, await handle.stat());
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      const entry = pack.entry(header, done);
      handed = true;
      const stream = createReadStream('', { fd: handle, start: 0, end: file.size - 1, autoClose: true });
      // The consumer went away (the server answered early): the entry fails with the pack.
      entry.on('error', (err: Error) => {
        stream.destroy();
        reject(err);
      });
      stream.on('data', (chunk) => onBytes?.(chunk.length));
      stream.on('error', (err) => {
        entry.destroy(err);
        reject(err);
      });
      stream.pipe(entry);
    });
  } finally {
    if (!handed) await handle.close();
  }
}

/** A small file's bytes, opened and checked as a streamed one is. */
function readWhole(abs: string, file: SourceFile): Buffer {
  let fd: number;
  try {
    fd = openSync(abs, OPEN_FLAGS);
  } catch (err) {
    throw openError(file, err as NodeJS.ErrnoException);
  }
  try {
    checkStill(file, fstatSync(fd));
    const bytes = Buffer.allocUnsafe(file.size);
    for (let at = 0; at < file.size;) {
      const n = readSync(fd, bytes, at, file.size - at, at);
      if (n === 0) throw new Error(`${file.name} changed size while packing (it was ${file.size} bytes); run the build again.`);
      at += n;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

function openError(file: SourceFile, err: NodeJS.ErrnoException): Error {
  return new Error(
    err.code === 'ELOOP'
      ? `${file.name} became a symbolic link while packing; it is not uploaded. Run the build again.`
      : `cannot read ${file.name}: ${err.message}`,
  );
}

function checkStill(file: SourceFile, st: Stats): void {
  if (!st.isFile()) throw new Error(`${file.name} is no longer a regular file; run the build again.`);
  if (st.size !== file.size)
    throw new Error(`${file.name} changed size while packing (${file.size} → ${st.size} bytes); run the build again.`);
}
