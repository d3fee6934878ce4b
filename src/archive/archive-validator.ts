import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';

import { ArchiveError, quotePath } from './archive-error.js';
import { compressedByteBudget, inflatedByteBudget, MAX_GO_MOD_BYTES, resolveArchiveLimits, type ArchiveLimits } from './archive-limits.js';
import { ByteCeiling, GzipIntake, HashingCounter } from './byte-limits.js';
import { normalizeEntryPath } from './entry-path.js';
import { GoModSyntaxError, parseGoMod } from './go-mod.js';
import { PathRegistry } from './path-registry.js';

export { ArchiveError, ARCHIVE_ERROR_CODES, type ArchiveErrorCode } from './archive-error.js';
export { DEFAULT_ARCHIVE_LIMITS, type ArchiveLimits } from './archive-limits.js';

export interface SourceSummary {
  /** Hex sha256 of the clean tar file written. */
  sha256: string;
  /** Bytes of the clean tar file. */
  size: number;
  /** Regular files in the clean tar. */
  files: number;
  /** Directory entries in the clean tar (repeats merged, the root and a stripped prefix left out). */
  directories: number;
  /** Sum of regular file sizes. */
  contentBytes: number;
  /** Module path from go.mod's `module` line. */
  module: string;
  /** go.mod `go` line, e.g. "1.22" or "1.22.1". */
  goDirective?: string;
  /** go.mod `toolchain` line, e.g. "go1.22.12". */
  toolchainDirective?: string;
  /** go.mod text (at most 64 KiB). */
  goMod: string;
  hasGoSum: boolean;
  /** vendor/modules.txt is present. */
  vendored: boolean;
  /** plugin.json beside go.mod (a Mattermost manifest), when there is one of at most 64 KiB. */
  pluginManifest?: string;
  /** e.g. "myplugin/" when every entry sat under that one directory and it was stripped. */
  strippedPrefix?: string;
  /** The directories (relative to go.mod, "" for its own) holding a .go file other than a test: where a package can be built. */
  goDirs: string[];
}

/** Fixed metadata of every clean entry, so equal file trees give equal bytes. */
const CLEAN_MTIME = new Date('2000-01-01T00:00:00Z');

/**
 * Reads an untrusted gzip'd tar from `input` and writes a clean, uncompressed tar of it to
 * `destPath`, validating while the bytes stream: nothing is extracted and only go.mod is held
 * in memory. The clean tar holds only regular files and directories, in upload order, with
 * relative names, modes 0644/0755, owner 0 and a fixed mtime; when the module sits in a
 * single top-level directory, that directory is stripped in a second pass over the file.
 *
 * The tar is written to `destPath.partial-<random>` and renamed to `destPath` only on
 * success, so `destPath` never holds a partial file; on any error every temporary file is
 * removed and the promise rejects with an `ArchiveError`. Codes caused by the archive are
 * final; `archive_repack_failed` (our disk, our directory) is retryable.
 *
 * `input` stays the caller's: on failure it is unpiped and left paused, not destroyed, so an
 * HTTP handler can still answer before it closes the connection (or resume() it to drain).
 * Nothing here times out: a caller that wants a deadline destroys `input`, which rejects
 * with `archive_truncated`.
 */
export async function repackSourceArchive(
  input: NodeJS.ReadableStream | Readable,
  destPath: string,
  limits: Partial<ArchiveLimits> = {},
): Promise<SourceSummary> {
  const resolved = resolveArchiveLimits(limits);
  const temporaries: string[] = [];
  const temporary = (): string => {
    const path = `${destPath}.partial-${randomBytes(8).toString('hex')}`;
    temporaries.push(path);
    return path;
  };

  try {
    const scanner = new UploadScanner(resolved);
    const firstFile = temporary();
    let written = await repackTar(
      (extract) => feedUpload(input, extract, resolved, scanner),
      firstFile,
      (header) => scanner.plan(header),
    );
    const layout = scanner.layout();
    let counts = scanner.counts;
    let finalFile = firstFile;

    if (layout.strippedPrefix !== undefined) {
      const stripper = new PrefixStripper(layout.strippedPrefix);
      finalFile = temporary();
      written = await repackTar(
        (extract) => pipeline(createReadStream(firstFile), extract),
        finalFile,
        (header) => stripper.plan(header),
      );
      counts = stripper.counts;
      await rm(firstFile, { force: true });
    }

    await rename(finalFile, destPath);
    const summary: SourceSummary = {
      sha256: written.sha256,
      size: written.size,
      files: counts.files,
      directories: counts.directories,
      contentBytes: counts.contentBytes,
      module: layout.goMod.module,
      goMod: layout.goModText,
      hasGoSum: layout.hasGoSum,
      vendored: layout.vendored,
      goDirs: layout.goDirs,
    };
    if (layout.goMod.go !== undefined) summary.goDirective = layout.goMod.go;
    if (layout.goMod.toolchain !== undefined) summary.toolchainDirective = layout.goMod.toolchain;
    if (layout.strippedPrefix !== undefined) summary.strippedPrefix = `${layout.strippedPrefix}/`;
    if (layout.pluginManifest !== undefined) summary.pluginManifest = layout.pluginManifest;
    return summary;
  } catch (err) {
    await Promise.all(temporaries.map((path) => rm(path, { force: true })));
    throw err instanceof ArchiveError ? err : repackFailed(err);
  }
}

/**
 * Pipes the upload into gunzip, then through the inflated-size ceiling into `extract`. The
 * gzip checks look at each chunk on its way in rather than being a stream of their own,
 * so each upload holds one socket chunk fewer in flight (see GzipIntake).
 */
async function feedUpload(
  input: NodeJS.ReadableStream | Readable,
  extract: tar.Extract,
  limits: ArchiveLimits,
  scanner: UploadScanner,
): Promise<void> {
  const intake = new GzipIntake(compressedByteBudget(limits));
  const gunzip = createGunzip();
  const inflated = new ByteCeiling(
    inflatedByteBudget(limits),
    (bytes, limit) =>
      new ArchiveError(
        'archive_too_large',
        `The archive unpacks to more than ${limit} bytes of tar data, more than its contents may need (at most ${limits.maxTotalBytes} bytes of files). Remove large files from the source.`,
        { status: 413, details: { inflatedBytes: bytes, limit } },
      ),
  );
  // The caller owns `input`, so it is piped by hand rather than handed to pipeline(),
  // which would destroy it on failure. A source that errors, or closes before its end
  // (a client that hung up, a caller's timeout), breaks the upload off.
  let ended = false;
  const refuse = (err: Error): void => {
    input.unpipe(gunzip);
    gunzip.destroy(err);
  };
  const brokeOff = (err?: unknown): void => {
    const reason = err === undefined ? 'the stream closed' : errorText(err);
    refuse(
      new ArchiveError('archive_truncated', `The upload broke off before the archive ended (${reason}). Send it again.`, {
        retryable: true,
        cause: err,
      }),
    );
  };
  // Registered before pipe(), so each runs ahead of it: a chunk that breaks a rule never
  // reaches gunzip, and an upload that ends too early never ends gunzip.
  const onData = (chunk: Buffer | string): void => {
    const problem = intake.inspect(chunk);
    if (problem) refuse(problem);
  };
  const onEnd = (): void => {
    ended = true;
    const problem = intake.atEnd();
    if (problem) refuse(problem);
  };
  const onClose = (): void => {
    if (!ended) brokeOff();
  };
  input.on('error', brokeOff);
  input.on('data', onData);
  input.on('end', onEnd);
  input.on('close', onClose);
  input.pipe(gunzip);
  try {
    await pipeline(gunzip, inflated, extract);
  } catch (err) {
    throw classifyUploadError(err, scanner.counts.entries, inflated.bytes);
  } finally {
    input.removeListener('error', brokeOff);
    input.removeListener('data', onData);
    input.removeListener('end', onEnd);
    input.removeListener('close', onClose);
    input.unpipe(gunzip);
  }
}

/** An entry stream as tar-stream hands it out. */
type EntryStream = tar.ExtractEvents['entry'][1];

/** The header fields a clean entry carries. */
type CleanHeader = Pick<tar.Header, 'name' | 'type' | 'size' | 'mode' | 'uid' | 'gid' | 'uname' | 'gname' | 'mtime'>;

interface PlannedEntry {
  header: CleanHeader;
  /** Receives the content as it streams (used to keep go.mod). */
  capture?: (chunk: Buffer) => void;
}

interface WrittenTar {
  sha256: string;
  size: number;
}

/**
 * Streams a tar through `plan` into a new tar file. `feed` writes the source tar into the
 * extractor; `plan` decides for each header: a header to write, `undefined` to skip the entry
 * (only ever a directory), or an exception to abort. Entries are copied one at a time with
 * backpressure from the file down to the source.
 */
async function repackTar(
  feed: (extract: tar.Extract) => Promise<void>,
  destFile: string,
  plan: (header: tar.Header) => PlannedEntry | undefined,
): Promise<WrittenTar> {
  const extract = tar.extract();
  const pack = tar.pack();
  const hashing = new HashingCounter();
  const errors: unknown[] = [];
  const fail = (err: unknown): void => {
    errors.push(err);
    const reason = err instanceof Error ? err : new Error(String(err));
    extract.destroy(reason);
    pack.destroy(reason);
  };

  let current: Promise<void> = Promise.resolve();
  extract.on('entry', (header: tar.Header, stream: EntryStream, next: (err?: Error | null) => void) => {
    // Entry streams error when the extractor is torn down; that error reaches us through
    // the pipelines already (tar-stream's own iterator does the same).
    stream.on('error', () => {});
    current = copyEntry(header, stream, pack, plan).then(
      () => next(),
      (err: unknown) => {
        fail(err);
        next(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });

  const file = createWriteStream(destFile, { flags: 'wx' });
  // The file is created by an open() that may still be under way when an upload is cut off:
  // the caller removes it only after the stream closed, or the open would re-create it after
  // the removal and leave it behind.
  const closed = new Promise<void>((resolve) => file.once('close', () => resolve()));
  const writing = pipeline(pack, hashing, file).catch(fail);
  const reading = feed(extract)
    // A tar whose last entry is empty and has no end-of-archive blocks lets the extractor
    // finish before that entry's handler did.
    .then(() => current)
    .then(() => {
      if (errors.length === 0) pack.finalize();
    })
    .catch(fail);
  await Promise.all([reading, writing]);
  await closed;

  if (errors.length > 0) throw firstCause(errors);
  return { sha256: hashing.digest(), size: hashing.bytes };
}

async function copyEntry(
  header: tar.Header,
  stream: EntryStream,
  pack: tar.Pack,
  plan: (header: tar.Header) => PlannedEntry | undefined,
): Promise<void> {
  const planned = plan(header);
  if (planned === undefined || planned.header.type === 'directory') {
    stream.resume();
    if (planned !== undefined) {
      await new Promise<void>((resolve, reject) => {
        pack.entry(planned.header, (err) => (err ? reject(err) : resolve()));
      });
    }
    return;
  }
  const sink = pack.entry(planned.header);
  const capture = planned.capture;
  if (capture === undefined) {
    await pipeline(stream, sink);
  } else {
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        capture(chunk);
        callback(null, chunk);
      },
    });
    await pipeline(stream, tap, sink);
  }
}

/**
 * When one failure tears everything down, the other streams report it again or report only
 * that they were closed early; the first real cause is the one to tell the user.
 */
function firstCause(errors: unknown[]): unknown {
  const secondary = (err: unknown): boolean => {
    const code = (err as { code?: unknown } | null)?.code;
    return (
      code === 'ERR_STREAM_PREMATURE_CLOSE' ||
      code === 'ERR_STREAM_DESTROYED' ||
      code === 'ABORT_ERR' ||
      /destroyed|premature close/i.test(errorText(err))
    );
  };
  return errors.find((err) => err instanceof ArchiveError) ?? errors.find((err) => !secondary(err)) ?? errors[0];
}

/** Maps gunzip and tar-parser failures on the upload to what the user did wrong. */
function classifyUploadError(err: unknown, entries: number, inflatedBytes: number): unknown {
  if (err instanceof ArchiveError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = errorText(err);
  if (typeof code === 'string' && code.startsWith('Z_')) {
    if (code === 'Z_BUF_ERROR' || /unexpected end/i.test(message)) {
      return new ArchiveError('archive_truncated', 'The gzip data ends early: the upload is incomplete. Send the whole .tar.gz again.', {
        retryable: true,
        cause: err,
      });
    }
    return new ArchiveError('archive_corrupt', `The gzip data is corrupt (${message}). Re-create the archive and send it again.`, {
      cause: err,
    });
  }
  if (message === 'Unexpected end of data') {
    if (entries === 0 && inflatedBytes < 512) {
      return notTar(err);
    }
    return new ArchiveError(
      'archive_truncated',
      `The tar data ends in the middle of an entry (after ${entries} entries): the archive is incomplete. Re-create it and send it again.`,
      { retryable: true, cause: err },
    );
  }
  if (/^Invalid tar header|^Invalid header|^Header exceeds max size/.test(message)) {
    if (entries === 0) return notTar(err);
    return new ArchiveError(
      'archive_not_tar',
      `The tar data is corrupt after entry ${entries} (${message}). Re-create the archive with tar and send it again.`,
      { cause: err },
    );
  }
  return err;
}

function notTar(cause: unknown): ArchiveError {
  return new ArchiveError(
    'archive_not_tar',
    'The upload is gzip data but not a tar archive. Send a .tar.gz made with tar (tar -czf source.tar.gz -C <plugin dir> .), not a gzip of a single file.',
    { cause },
  );
}

function repackFailed(err: unknown): ArchiveError {
  return new ArchiveError('archive_repack_failed', `Storing the source failed on the server (${errorText(err)}). Try again later.`, {
    status: 500,
    retryable: true,
    cause: err,
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function cleanHeader(name: string, type: 'file' | 'directory', size: number, executable: boolean): CleanHeader {
  return {
    name,
    type,
    size,
    mode: type === 'directory' || executable ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
    mtime: CLEAN_MTIME,
  };
}

/** go.mod, go.sum and vendor/modules.txt as seen at one candidate module root. */
interface ModuleRootFiles {
  goMod?: Buffer[];
  /** plugin.json, captured when small enough to be a manifest. */
  manifest?: Buffer[];
  goModTooLarge?: boolean;
  hasGoSum: boolean;
  vendored: boolean;
}

/**
 * The first pass: checks each header of the upload against the rules and the limits,
 * remembers every path, and watches two candidate module roots, the archive root and
 * (while there is only one) the single top-level directory.
 */
class UploadScanner {
  readonly counts = { entries: 0, files: 0, directories: 0, contentBytes: 0 };
  private readonly paths = new PathRegistry();
  /** undefined: nothing seen yet; null: more than one top-level name, or a file at the root. */
  private topLevel: string | null | undefined;
  private readonly root: ModuleRootFiles = { hasGoSum: false, vendored: false };
  private readonly nested: ModuleRootFiles = { hasGoSum: false, vendored: false };
  /** Directories holding non-test .go files, from the archive's root (at most one per entry). */
  private readonly goDirs = new Set<string>();

  constructor(private readonly limits: ArchiveLimits) {}

  /** A regular file's name and size against the rules and the limits (one file, and all of them together). */
  private checkFile(name: string, components: string[], trailingSlash: boolean, size: number): void {
    if (components.length === 0 || trailingSlash) {
      throw new ArchiveError(
        'archive_bad_name',
        `Regular file ${quotePath(name)} has a name that is empty or ends in "/". Re-create the archive with tar.`,
        { details: { path: name } },
      );
    }
    if (size > this.limits.maxFileBytes) {
      throw new ArchiveError(
        'archive_file_too_large',
        `File ${quotePath(name)} is ${size} bytes; the limit is ${this.limits.maxFileBytes}. Leave it out of the source.`,
        { status: 413, details: { path: name, size, limit: this.limits.maxFileBytes } },
      );
    }
    if (this.counts.contentBytes + size > this.limits.maxTotalBytes) {
      throw new ArchiveError(
        'archive_too_large',
        `The files add up to more than ${this.limits.maxTotalBytes} bytes (reached at ${quotePath(name)}). Leave build output and other large files out of the source.`,
        { status: 413, details: { path: name, limit: this.limits.maxTotalBytes } },
      );
    }
  }

  plan(header: tar.Header): PlannedEntry | undefined {
    const name = header.name;
    if (++this.counts.entries > this.limits.maxEntries) {
      throw new ArchiveError(
        'archive_too_many_entries',
        `The archive has more than ${this.limits.maxEntries} entries. Leave out build output, node_modules and other generated files.`,
        { details: { limit: this.limits.maxEntries } },
      );
    }
    checkEntryType(header);
    const { components, trailingSlash } = normalizeEntryPath(name, this.limits);
    const size = header.size ?? 0;

    if (header.type === 'directory') {
      if (size !== 0) {
        throw new ArchiveError(
          'archive_unsupported_entry',
          `Directory ${quotePath(name)} carries ${size} bytes of data, which tar directories do not. Re-create the archive with tar.`,
          { details: { path: name } },
        );
      }
      if (components.length === 0) return undefined; // "./", the root itself
      if (!this.paths.add(components, 'directory')) return undefined;
      this.noteTopLevel(components, 'directory');
      this.counts.directories++;
      return { header: cleanHeader(`${components.join('/')}/`, 'directory', 0, false) };
    }

    this.checkFile(name, components, trailingSlash, size);
    this.paths.add(components, 'file');
    this.noteTopLevel(components, 'file');
    this.counts.files++;
    this.counts.contentBytes += size;

    const path = components.join('/');
    const file = components[components.length - 1] as string;
    if (file.endsWith('.go') && !file.endsWith('_test.go')) this.goDirs.add(components.slice(0, -1).join('/'));
    const planned: PlannedEntry = { header: cleanHeader(path, 'file', size, ((header.mode ?? 0) & 0o111) !== 0) };
    const manifestAt = this.manifestRoot(components);
    if (manifestAt !== undefined && size <= MAX_GO_MOD_BYTES) {
      const chunks: Buffer[] = [];
      manifestAt.manifest = chunks;
      planned.capture = (chunk) => chunks.push(chunk);
    }
    const goModAt = this.moduleRootFile(components);
    if (goModAt !== undefined) {
      if (size > MAX_GO_MOD_BYTES) {
        if (goModAt === this.root) throw goModTooLarge(path, size);
        goModAt.goModTooLarge = true; // only an error if this directory turns out to be the module root
      } else {
        const chunks: Buffer[] = [];
        goModAt.goMod = chunks;
        planned.capture = (chunk) => chunks.push(chunk);
      }
    }
    return planned;
  }

  /**
   * Decides, once every entry passed, where the module root is and reads its go.mod. Throws
   * `archive_empty`, `archive_no_go_mod` or `archive_bad_go_mod`.
   */
  layout(): {
    strippedPrefix?: string;
    goMod: ReturnType<typeof parseGoMod>;
    goModText: string;
    hasGoSum: boolean;
    vendored: boolean;
    pluginManifest?: string;
    goDirs: string[];
  } {
    if (this.counts.entries === 0 || this.counts.files === 0) {
      throw new ArchiveError(
        'archive_empty',
        this.counts.entries === 0
          ? 'The archive holds no entries. Pack the plugin directory (tar -czf source.tar.gz -C <plugin dir> .).'
          : 'The archive holds no files, only directories. Pack the plugin directory with its files.',
      );
    }
    let moduleRoot: ModuleRootFiles;
    let strippedPrefix: string | undefined;
    if (this.root.goMod !== undefined) {
      moduleRoot = this.root;
    } else if (typeof this.topLevel === 'string' && (this.nested.goMod !== undefined || this.nested.goModTooLarge)) {
      moduleRoot = this.nested;
      strippedPrefix = this.topLevel;
      if (this.nested.goModTooLarge) throw goModTooLarge(`${this.topLevel}/go.mod`, undefined);
    } else {
      throw new ArchiveError(
        'archive_no_go_mod',
        typeof this.topLevel === 'string'
          ? `There is no go.mod at the root of the archive or in its only directory ${quotePath(`${this.topLevel}/`)}. Pack the directory that holds the plugin's go.mod.`
          : "There is no go.mod at the root of the archive. Pack the directory that holds the plugin's go.mod (tar -czf source.tar.gz -C <plugin dir> .).",
      );
    }

    const goModPath = strippedPrefix === undefined ? 'go.mod' : `${strippedPrefix}/go.mod`;
    let goModText: string;
    try {
      goModText = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(moduleRoot.goMod ?? []));
    } catch {
      throw badGoMod(goModPath, 'it is not valid UTF-8');
    }
    let goMod: ReturnType<typeof parseGoMod>;
    try {
      goMod = parseGoMod(goModText);
    } catch (err) {
      if (err instanceof GoModSyntaxError) throw badGoMod(goModPath, err.message);
      throw err;
    }
    const result = {
      goMod,
      goModText,
      goDirs: this.goDirsUnder(strippedPrefix),
      hasGoSum: moduleRoot.hasGoSum,
      vendored: moduleRoot.vendored,
      ...(moduleRoot.manifest ? { pluginManifest: Buffer.concat(moduleRoot.manifest).toString('utf8') } : {}),
    };
    return strippedPrefix === undefined ? result : { ...result, strippedPrefix };
  }

  /** The directories with Go files, relative to the module root (the stripped directory's, when there is one). */
  private goDirsUnder(strippedPrefix: string | undefined): string[] {
    if (strippedPrefix === undefined) return [...this.goDirs].sort();
    const under = `${strippedPrefix}/`;
    return [...this.goDirs].flatMap((d) => (d === strippedPrefix ? [''] : d.startsWith(under) ? [d.slice(under.length)] : [])).sort();
  }

  private noteTopLevel(components: readonly string[], kind: 'file' | 'directory'): void {
    const top = components[0] as string;
    if (components.length === 1 && kind === 'file') this.topLevel = null;
    else if (this.topLevel === undefined) this.topLevel = top;
    else if (this.topLevel !== top) this.topLevel = null;
  }

  /** The candidate root whose plugin.json this is, if it is one. */
  private manifestRoot(components: readonly string[]): ModuleRootFiles | undefined {
    if (components.length === 1 && components[0] === 'plugin.json') return this.root;
    if (typeof this.topLevel === 'string' && components.length === 2 && components[0] === this.topLevel && components[1] === 'plugin.json')
      return this.nested;
    return undefined;
  }

  /** Notes go.sum and vendor/modules.txt; returns the candidate root whose go.mod this is, if it is one. */
  private moduleRootFile(components: readonly string[]): ModuleRootFiles | undefined {
    const candidates: [ModuleRootFiles, readonly string[]][] = [[this.root, components]];
    if (typeof this.topLevel === 'string' && components.length > 1 && components[0] === this.topLevel) {
      candidates.push([this.nested, components.slice(1)]);
    }
    let goModOf: ModuleRootFiles | undefined;
    for (const [files, rest] of candidates) {
      const path = rest.join('/');
      if (path === 'go.mod') goModOf = files;
      else if (path === 'go.sum') files.hasGoSum = true;
      else if (path === 'vendor/modules.txt') files.vendored = true;
    }
    return goModOf;
  }
}

/**
 * The second pass, over our own clean tar: drops the single top-level directory from every
 * name. The first pass already checked everything, so names stay unique and valid.
 */
class PrefixStripper {
  readonly counts = { entries: 0, files: 0, directories: 0, contentBytes: 0 };
  private readonly prefix: string;

  constructor(prefix: string) {
    this.prefix = `${prefix}/`;
  }

  plan(header: tar.Header): PlannedEntry | undefined {
    this.counts.entries++;
    if (!header.name.startsWith(this.prefix)) throw new Error(`clean tar entry ${header.name} lies outside ${this.prefix}`);
    const name = header.name.slice(this.prefix.length);
    if (header.type === 'directory') {
      if (name === '') return undefined;
      this.counts.directories++;
      return { header: cleanHeader(name, 'directory', 0, false) };
    }
    const size = header.size ?? 0;
    this.counts.files++;
    this.counts.contentBytes += size;
    return { header: cleanHeader(name, 'file', size, ((header.mode ?? 0) & 0o111) !== 0) };
  }
}

function checkEntryType(header: tar.Header): void {
  const path = quotePath(header.name);
  const details = { path: header.name };
  // tar-stream reports type flags it does not know (GNU sparse, volume labels...) as null.
  const type = header.type as tar.Header['type'] | null;
  switch (type) {
    case 'file':
    case 'directory':
      break;
    case 'symlink':
      throw new ArchiveError(
        'archive_symlink',
        `${path} is a symbolic link (to ${quotePath(header.linkname ?? '')}); the archive may hold only regular files and directories. Replace the link with the file it points to (tar --dereference).`,
        { details },
      );
    case 'link':
      throw new ArchiveError(
        'archive_hardlink',
        `${path} is a hard link (to ${quotePath(header.linkname ?? '')}); the archive may hold only regular files and directories. Pack it as a regular file (GNU tar --hard-dereference).`,
        { details },
      );
    case 'character-device':
    case 'block-device':
      throw new ArchiveError(
        'archive_device',
        `${path} is a ${type === 'block-device' ? 'block' : 'character'} device; the archive may hold only regular files and directories. Leave it out.`,
        { details },
      );
    case 'fifo':
      throw new ArchiveError(
        'archive_fifo',
        `${path} is a named pipe (FIFO); the archive may hold only regular files and directories. Leave it out.`,
        { details },
      );
    default:
      throw new ArchiveError(
        'archive_unsupported_entry',
        `${path} is a tar entry of an unsupported kind (${type ?? 'unknown type flag'}); the archive may hold only regular files and directories. Re-create it with plain tar.`,
        { details },
      );
  }
  // PAX sparse files look like regular files whose data starts with a sparse map.
  const pax = header.pax;
  if (typeof pax === 'object' && pax !== null && Object.keys(pax).some((key) => key.startsWith('GNU.sparse.'))) {
    throw new ArchiveError(
      'archive_unsupported_entry',
      `${path} is a sparse file; the archive may hold only plain regular files and directories. Re-create it without --sparse.`,
      { details },
    );
  }
}

function goModTooLarge(path: string, size: number | undefined): ArchiveError {
  return new ArchiveError(
    'archive_bad_go_mod',
    `${quotePath(path)} is ${size === undefined ? 'over' : `${size} bytes, over`} the ${MAX_GO_MOD_BYTES}-byte limit for go.mod. Trim it (go mod tidy).`,
    { details: { path, limit: MAX_GO_MOD_BYTES } },
  );
}

function badGoMod(path: string, problem: string): ArchiveError {
  return new ArchiveError(
    'archive_bad_go_mod',
    `${quotePath(path)} cannot be read: ${problem}. It needs a line like "module example.com/myplugin" (go mod init writes one).`,
    { details: { path } },
  );
}
