import { constants, createReadStream } from 'node:fs';
import { lstat, open, opendir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
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

  const walk = async (absDir: string, relDir: string): Promise<void> => {
    const entries = [];
    for await (const entry of await opendir(absDir)) entries.push(entry);
    // Byte order, so the same tree always gives the same archive.
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const name = relDir ? `${relDir}/${entry.name}` : entry.name;
      const abs = path.join(absDir, entry.name);
      if (entry.isSymbolicLink()) {
        listing.skipped.push({ name, kind: 'symlink' });
      } else if (entry.isDirectory()) {
        if (excluded.has(abs) || rules.ignores(name, true)) listing.ignored++;
        else await walk(abs, name);
      } else if (entry.isFile()) {
        if (rules.ignores(name, false)) {
          listing.ignored++;
          continue;
        }
        const st = await lstat(abs);
        listing.files.push({ name, size: st.size, executable: (st.mode & 0o111) !== 0 });
        listing.bytes += st.size;
      } else {
        listing.skipped.push({ name, kind: 'special' });
      }
    }
  };
  await walk(root, '');
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
  const gzip = createGzip();
  const out = new PassThrough();
  const feed = async (): Promise<void> => {
    for (const file of listing.files) await addFile(pack, listing.root, file, options.onFileBytes);
    pack.finalize();
  };
  feed().catch((err: Error) => pack.destroy(err));
  pipeline(pack as unknown as Readable, gzip, out).catch((err: Error) => out.destroy(err));
  return out;
}

async function addFile(pack: tar.Pack, root: string, file: SourceFile, onBytes?: (n: number) => void): Promise<void> {
  const abs = path.join(root, ...file.name.split('/'));
  // O_NONBLOCK: a file replaced by a FIFO since the listing must not block the open.
  const handle = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    throw new Error(err.code === 'ELOOP' ? `${file.name} became a symbolic link while packing; it is not uploaded. Run the build again.` : `cannot read ${file.name}: ${err.message}`);
  });
  let handed = false;
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error(`${file.name} is no longer a regular file; run the build again.`);
    if (st.size !== file.size) throw new Error(`${file.name} changed size while packing (${file.size} → ${st.size} bytes); run the build again.`);
    const header = { name: file.name, size: file.size, mode: file.executable ? 0o755 : 0o644, mtime: MTIME, uid: 0, gid: 0 };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (file.size === 0) {
        pack.entry(header, Buffer.alloc(0), done);
        return;
      }
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
