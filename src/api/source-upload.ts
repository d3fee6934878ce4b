import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { Request } from 'express';
import { createGzip } from 'node:zlib';
import busboy from 'busboy';
import { repackSourceArchive, type ArchiveLimits, type SourceSummary } from '../archive/archive-validator.js';
import type { Config } from '../config.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { BlobStore } from '../store/blob-store.js';
import type { HostPart } from '../host/host-request.js';
import { MAX_BUILDINFO_BYTES } from '../verify/go-buildinfo.js';

export interface UploadLimits {
  maxBytes: number;
  /** No byte for this long: the upload is cut off. */
  idleMs: number;
  /** The whole upload must arrive within this. */
  totalMs: number;
  /** Caps on what the archive holds (defaults: DEFAULT_ARCHIVE_LIMITS). */
  archive?: Partial<ArchiveLimits>;
  /** The fraction of the host-binary budget one tenant's uploads may hold at once (default: all of it). */
  hostBinaryShare?: number;
}

/** The upload limits of the configuration (PLUGFORGE_MAX_UPLOAD_MB, PLUGFORGE_UPLOAD_*, PLUGFORGE_ARCHIVE_*). */
export function uploadLimitsOf(config: Pick<Config, 'maxUploadBytes' | 'upload' | 'tenancy'>): UploadLimits {
  return {
    maxBytes: config.maxUploadBytes,
    idleMs: config.upload.idleMs,
    totalMs: config.upload.totalMs,
    archive: config.upload.archive,
    hostBinaryShare: config.tenancy.share,
  };
}

export interface ReceivedSource {
  summary: SourceSummary;
  /** The clean tar, not yet in the store: adopt it once the build is accepted, discard it otherwise. */
  tempPath: string;
  /** Form fields of a multipart upload (options); a `hostGoMod` file part is read into its field. */
  fields: Record<string, string>;
  /** The `hostBinary` file parts, in order: host executables (one per target at most), or the text of `go version -m <host>`. */
  hostBinaries: HostPart[];
  /** Gives back the memory budget the host binary holds: call once it has been read. */
  release: () => void;
  compressedBytes: number;
}

const GZIP_TYPES = new Set([
  'application/gzip',
  'application/x-gzip',
  'application/x-tar+gzip',
  'application/x-compressed-tar',
  'application/octet-stream',
]);

/**
 * Receives the source of POST /v1/builds: a raw .tar.gz body, or multipart/form-data with
 * a `source` file part and option fields. The archive is validated and re-packed while
 * it streams (never buffered whole, never extracted). Upload size and pace are capped.
 * On any failure nothing is left behind.
 */
/**
 * A source already in the store (a build's, rebuilt for a watch: docs/hosts.md, "Watches"),
 * read again as an upload of it would be: the same checks, the same clean tar and summary.
 */
export async function receiveStored(store: BlobStore, sha256: string, limits: UploadLimits): Promise<ReceivedSource> {
  const tempPath = store.tempPath('source');
  try {
    const blob = await store.open(sha256);
    const summary = await repackSourceArchive(blob.stream.pipe(createGzip({ level: 1 })), tempPath, limits.archive);
    return { summary, tempPath, fields: {}, hostBinaries: [], compressedBytes: 0, release: () => undefined };
  } catch (err) {
    await store.discard(tempPath);
    throw err;
  }
}

export async function receiveSource(
  req: Request,
  store: BlobStore,
  limits: UploadLimits,
  onBytes: (n: number) => void,
  tenant = 'public',
): Promise<ReceivedSource> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limits.maxBytes) throw tooLarge(limits.maxBytes);

  const tempPath = store.tempPath('source');
  const guard = new UploadGuard(limits, onBytes);
  // Its failure is read from guard.failure; an 'error' event with no listener would be
  // raised as an uncaught exception and end the process (a client that stalls, then hangs up).
  guard.on('error', () => undefined);
  const stopTimers = guard.watch(req);
  try {
    if (GZIP_TYPES.has(type) || type === '') {
      const summary = await repackSourceArchive(req.pipe(guard), tempPath, limits.archive);
      return { summary, tempPath, fields: {}, hostBinaries: [], compressedBytes: guard.bytes, release: () => undefined };
    }
    if (type === 'multipart/form-data') {
      const form = await receiveMultipart(
        req,
        guard,
        (file) => repackSourceArchive(file, tempPath, limits.archive),
        new BudgetHold(hostBinaryBudget, tenant, limits.hostBinaryShare ?? 1),
      );
      return { ...form, summary: form.summary!, tempPath };
    }
    throw new PlugforgeError(
      'unsupported_media_type',
      `Content-Type ${type} is not accepted: send the source as application/gzip (a .tar.gz body) or multipart/form-data with a "source" file part.`,
      { status: 415 },
    );
  } catch (err) {
    await store.discard(tempPath);
    throw guard.failure ?? err;
  } finally {
    stopTimers();
  }
}

/** What a host release's registration sends (POST /v1/hosts): its fields, and its hostBinary parts read (hostGoMod into its field). */
export type ReceivedHostForm = Pick<ReceivedSource, 'fields' | 'hostBinaries' | 'release'>;

/**
 * Receives the form of POST /v1/hosts: fields and hostBinary/hostGoMod parts, under the very
 * caps, memory budget (and tenant share) and deadlines of a build's upload; no source part.
 */
export async function receiveHostForm(
  req: Request,
  limits: UploadLimits,
  onBytes: (n: number) => void,
  tenant: string,
): Promise<ReceivedHostForm> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limits.maxBytes) throw tooLarge(limits.maxBytes);
  if (type !== 'multipart/form-data') {
    throw new PlugforgeError(
      'unsupported_media_type',
      `Content-Type ${type || '(none)'} is not accepted: send multipart/form-data with the fields name and version and hostBinary parts (or a hostGoMod part and a go field).`,
      { status: 415 },
    );
  }
  const guard = new UploadGuard(limits, onBytes);
  guard.on('error', () => undefined);
  const stopTimers = guard.watch(req);
  try {
    const { fields, hostBinaries, release } = await receiveMultipart(
      req,
      guard,
      undefined,
      new BudgetHold(hostBinaryBudget, tenant, limits.hostBinaryShare ?? 1),
    );
    return { fields, hostBinaries, release };
  } catch (err) {
    throw guard.failure ?? err;
  } finally {
    stopTimers();
  }
}

/**
 * A multipart upload's fields and host parts, and its source part when `source` is given
 * (a build's; then one is required); without it a source part is refused.
 */
async function receiveMultipart(
  req: Request,
  guard: UploadGuard,
  source: ((file: Readable) => Promise<SourceSummary>) | undefined,
  held: BudgetHold,
): Promise<Omit<ReceivedSource, 'summary' | 'tempPath'> & { summary?: SourceSummary }> {
  const fields: Record<string, string> = {};
  let summary: Promise<SourceSummary> | undefined;
  let problem: PlugforgeError | undefined;
  const parts: Promise<void>[] = [];
  const hostBinaries: HostPart[] = [];
  let hostBinaryParts = 0;
  const parser = busboy({ headers: req.headers, limits: { fields: 20, fieldSize: 64 * 1024, files: 2 + MAX_HOST_BINARIES, parts: 30 } });
  const done = new Promise<void>((resolve, reject) => {
    parser.on('field', (name, value) => {
      if (name in fields) problem ??= new PlugforgeError('invalid_option', `Form field "${name}" was given more than once.`);
      fields[name] = value;
    });
    parser.on('file', (name, file: Readable) => {
      // Destroyed with the parser when the upload is cut off, possibly after the archive
      // check let go of it: its errors are reported through the check or not at all.
      file.on('error', () => undefined);
      if (name === 'source' && source && !summary) {
        summary = source(file);
        // Keep the rejection for later; the parser must go on draining the body.
        summary.catch(() => file.resume());
        return;
      }
      if ((name === 'hostBinary' && hostBinaryParts < MAX_HOST_BINARIES) || (name === 'hostGoMod' && !('hostGoMod' in fields))) {
        const index = name === 'hostBinary' ? hostBinaryParts++ : 0;
        const max = name === 'hostBinary' ? MAX_HOST_BINARY_BYTES : MAX_HOST_GOMOD_BYTES;
        parts.push(
          readPart(file, max, name === 'hostBinary' ? { hold: held, textMax: MAX_BUILDINFO_BYTES } : {}).then(
            (part) => {
              if (name === 'hostBinary') hostBinaries[index] = part;
              else fields.hostGoMod = part.bytes.toString('utf8');
            },
            (err: unknown) => {
              if (err instanceof PlugforgeError) problem ??= err;
              else
                problem ??= new PlugforgeError(
                  'host_too_large',
                  `The "${name}" part is larger than ${max / 1048576} MiB. ${name === 'hostBinary' ? 'Send the text of `go version -m <host>` instead of the executable.' : "Send the host program's go.mod file."}`,
                  { status: 413 },
                );
            },
          ),
        );
        return;
      }
      if (name === 'hostBinary') {
        problem ??= new PlugforgeError(
          'invalid_option',
          `More than ${MAX_HOST_BINARIES} "hostBinary" parts: give at most one host executable per target.`,
        );
      } else if (name === 'hostGoMod') {
        problem ??= new PlugforgeError('invalid_option', `More than one "${name}" part.`);
      } else if (!source) {
        problem ??= new PlugforgeError(
          'unknown_option',
          `Unexpected file part "${name}"; a host release is described by hostBinary parts, or a hostGoMod part and a go field.`,
        );
      } else if (name !== 'source') {
        problem ??= new PlugforgeError('unknown_option', `Unexpected file part "${name}"; send the archive as the "source" part.`);
      } else {
        problem ??= new PlugforgeError('invalid_option', 'More than one "source" part.');
      }
      file.resume();
    });
    parser.on('partsLimit', () => (problem ??= new PlugforgeError('invalid_option', 'Too many form parts.')));
    parser.on('error', (err: Error) => reject(new PlugforgeError('bad_multipart', `The multipart body could not be read: ${err.message}`)));
    parser.on('close', () => resolve());
  });
  // pipe() does not pass errors on: a guard cut off for size or pace must stop the parser,
  // which destroys the source part's stream and so ends the archive check.
  guard.on('error', (err) => parser.destroy(err));
  req.pipe(guard).pipe(parser);
  try {
    try {
      await done;
    } catch (err) {
      // The archive check may still be writing; let it finish (and clean up) before the
      // caller removes its file, so nothing is left behind.
      await summary?.catch(() => undefined);
      throw err;
    }
    if (source && !summary)
      throw (
        problem ??
        new PlugforgeError(
          'missing_source',
          'No "source" file part in the form: attach the plugin source as a .tar.gz in a part named "source".',
        )
      );
    const result = await summary;
    await Promise.all(parts);
    if (problem) throw problem;
    return {
      ...(result ? { summary: result } : {}),
      fields,
      hostBinaries: hostBinaries.filter(Boolean),
      compressedBytes: guard.bytes,
      release: () => held.release(),
    };
  } catch (err) {
    held.release();
    throw err;
  }
}

/**
 * Host binaries held in memory at once by this process, across requests: a cap on what
 * concurrent uploads of large executables can cost. Past it, a request is answered 503
 * (retry later, or send the `go version -m` text, which is a few KiB); past its tenant's
 * share of it (PLUGFORGE_TENANT_SHARE_PERCENT), 429, so that one tenant cannot hold it all.
 */
export const hostBinaryBudget = { inUse: 0, max: 256 * 1024 * 1024, byTenant: new Map<string, number>() };

/** One request's part of the budget, given back once. */
class BudgetHold {
  private bytes = 0;
  /** Set when a take was refused: whose limit it passed. */
  refusal: PlugforgeError | undefined;

  constructor(
    private readonly budget: typeof hostBinaryBudget,
    private readonly tenant: string,
    private readonly share: number,
  ) {}

  take(n: number): boolean {
    const tenantMax = Math.floor(this.budget.max * this.share);
    const tenantInUse = this.budget.byTenant.get(this.tenant) ?? 0;
    if (this.budget.inUse + n > this.budget.max) {
      this.refusal = new PlugforgeError(
        'host_binary_busy',
        'The server is holding as many host binaries in memory as it may; try again shortly, or send the text of `go version -m <host>` as hostBinary instead.',
        { status: 503, retryable: true },
      );
      return false;
    }
    if (tenantInUse + n > tenantMax) {
      this.refusal = new PlugforgeError(
        'tenant_host_binary_busy',
        `Tenant ${this.tenant}'s uploads hold ${Math.round(tenantInUse / 1048576)} MiB of host binaries in memory; its share is ${Math.round(tenantMax / 1048576)} MiB. Wait for its other uploads to finish, or send the text of \`go version -m <host>\` as hostBinary instead.`,
        { status: 429, details: { limitBytes: tenantMax } },
      );
      return false;
    }
    this.budget.inUse += n;
    this.budget.byTenant.set(this.tenant, tenantInUse + n);
    this.bytes += n;
    return true;
  }

  release(): void {
    this.budget.inUse -= this.bytes;
    const left = (this.budget.byTenant.get(this.tenant) ?? 0) - this.bytes;
    if (left > 0) this.budget.byTenant.set(this.tenant, left);
    else this.budget.byTenant.delete(this.tenant);
    this.bytes = 0;
  }
}

/**
 * A host binary is read whole into memory: its build info is found through the ELF section
 * table at the file's end. Capped; the text of `go version -m` is the light alternative.
 */
export const MAX_HOST_BINARY_BYTES = 128 * 1024 * 1024;
/** One host executable per target at most (a release ships gotify-linux-amd64, -arm-7, -arm64, -386). */
export const MAX_HOST_BINARIES = 4;
const MAX_HOST_GOMOD_BYTES = 256 * 1024;

/**
 * A file part's bytes, up to max (then the rest is drained and the promise rejects), within
 * the memory budget when one is given (past it: the hold's refusal, 503 or the tenant's 429).
 * A part that does not start as an ELF file is text, held to `textMax` (413 host_too_large).
 * Hashed as it arrives: hashing 128 MiB at once would hold the event loop for most of a second.
 */
function readPart(
  file: Readable,
  max: number,
  options: { hold?: BudgetHold; textMax?: number },
): Promise<{ bytes: Buffer; sha256: string }> {
  const { hold, textMax } = options;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const hash = createHash('sha256');
    let size = 0;
    let limit = max;
    let busy = false;
    let head: Buffer | undefined = textMax === undefined ? undefined : Buffer.alloc(0);
    file.on('data', (c: Buffer) => {
      // Text or ELF is decided once the four bytes of the ELF magic could have arrived.
      if (head && textMax !== undefined) {
        head = Buffer.concat([head, c.subarray(0, 4)]);
        if (head.length >= 4) {
          if (head.readUInt32BE(0) !== 0x7f454c46) limit = Math.min(max, textMax);
          head = undefined;
        }
      }
      size += c.length;
      if (busy || size > limit) return;
      if (hold && !hold.take(c.length)) {
        busy = true;
        chunks.length = 0;
        return;
      }
      chunks.push(c);
      hash.update(c);
    });
    file.on('end', () => {
      if (busy) reject(hold?.refusal);
      else if (size > limit && limit < max)
        reject(
          new PlugforgeError(
            'host_too_large',
            `The hostBinary text is larger than ${limit / 1024} KiB, far more than \`go version -m\` prints for any host (about 100 bytes a module). Send that command's output unchanged, or the host executable.`,
            { status: 413 },
          ),
        );
      else if (size > limit) reject(new Error('too large'));
      else resolve({ bytes: Buffer.concat(chunks), sha256: hash.digest('hex') });
    });
    file.on('error', reject);
  });
}

function tooLarge(max: number): PlugforgeError {
  return new PlugforgeError(
    'upload_too_large',
    `The upload is larger than ${Math.round(max / 1048576)} MiB. Leave build outputs and large assets out of the archive.`,
    { status: 413 },
  );
}

/** Counts compressed bytes, and cuts the upload off when too large or too slow. */
class UploadGuard extends Transform {
  bytes = 0;
  failure: PlugforgeError | undefined;
  private lastByte = Date.now();

  constructor(
    private readonly limits: UploadLimits,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    this.lastByte = Date.now();
    this.onBytes(chunk.length);
    if (this.bytes > this.limits.maxBytes) return done(this.fail(tooLarge(this.limits.maxBytes)));
    done(null, chunk);
  }

  fail(err: PlugforgeError): PlugforgeError {
    this.failure ??= err;
    return this.failure;
  }

  watch(req: Readable): () => void {
    const started = Date.now();
    const timer = setInterval(
      () => {
        const now = Date.now();
        let err: PlugforgeError | undefined;
        if (now - this.lastByte > this.limits.idleMs) {
          err = new PlugforgeError(
            'upload_timeout',
            `No data arrived for ${this.limits.idleMs / 1000} s; the upload was cut off. Send the archive in one go.`,
            { status: 408 },
          );
        } else if (now - started > this.limits.totalMs) {
          err = new PlugforgeError('upload_timeout', `The upload took longer than ${this.limits.totalMs / 1000} s and was cut off.`, {
            status: 408,
          });
        }
        if (err) {
          clearInterval(timer);
          this.destroy(this.fail(err));
          req.unpipe(this);
          req.resume();
        }
      },
      Math.min(1000, this.limits.idleMs / 2),
    );
    timer.unref();
    // A client that hangs up: 'close' before the body was complete ('aborted' is not
    // emitted in every case, e.g. when no byte of the body had arrived yet).
    const gone = () => {
      if (!(req as Readable & { complete?: boolean }).complete && !this.destroyed) {
        this.destroy(
          this.fail(new PlugforgeError('upload_aborted', 'The client closed the connection before the upload finished.', { status: 400 })),
        );
      }
    };
    req.on('aborted', gone);
    req.on('close', gone);
    // Gone already, before the upload was even looked at (while the token, the options
    // and the limits were checked): the events above will not come again.
    const socket = (req as Readable & { socket?: { destroyed?: boolean } }).socket;
    if (req.destroyed || socket?.destroyed) gone();
    return () => {
      clearInterval(timer);
      req.off('aborted', gone);
      req.off('close', gone);
    };
  }
}
