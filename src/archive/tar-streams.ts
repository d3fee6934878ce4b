import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';

/**
 * The one way plugforge streams tar archives, reading or writing, wherever they go (an
 * HTTP response, a container, the blob store). Every stream involved is joined by
 * pipeline(): an error on either side, or a peer that goes away (a client closing the
 * download, an engine dropping the connection), destroys all of them and reaches the one
 * promise the caller awaits. Nothing is left unhandled, nothing half-written is kept.
 */

/** An entry's header, as read (all fields) or as written (a name and what else applies). */
export type TarHeader = Partial<tar.Header> & Pick<tar.Header, 'name'>;

/** What a tar writer offers while it is being filled. */
export interface TarWriter {
  /** Adds an entry whose bytes are in memory (or none: directories). */
  add(header: TarHeader, body?: Buffer | string): Promise<void>;
  /** Adds an entry streamed from `body` (header.size must be its exact length); `body` is destroyed if the archive fails. */
  addStream(header: TarHeader, body: Readable): Promise<void>;
}

/** The error of an archive whose reader went away before it was complete. */
export class ArchiveClosedError extends Error {
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
  constructor() {
    super('The archive was closed before it was complete (its reader went away).');
    this.name = 'ArchiveClosedError';
  }
}

/**
 * Writes a tar (gzip'd when asked) into `output`, filled by `fill`. Resolves once the
 * whole archive reached `output`; rejects with the first error of any side, after
 * destroying every stream (a destroyed `output`, such as a response whose client left,
 * rejects with ERR_STREAM_PREMATURE_CLOSE).
 */
export async function writeTar(
  output: Writable,
  fill: (writer: TarWriter) => Promise<void>,
  options: { gzip?: boolean } = {},
): Promise<void> {
  const pack = tar.pack();
  const sending = options.gzip ? pipeline(pack, createGzip(), output) : pipeline(pack, output);
  // Observed at once: a failure while `fill` still runs must not be an unhandled rejection.
  let failure: unknown;
  const settled = sending.catch((err: unknown) => {
    failure ??= err;
  });
  // What `fill` threw says more than the stream error it caused: it wins.
  let fillError: unknown;
  try {
    await fill(writerOf(pack));
    pack.finalize();
  } catch (err) {
    fillError = err;
    pack.destroy(err as Error);
  }
  await settled;
  if (fillError !== undefined) throw fillError;
  if (failure !== undefined) throw failure;
}

/** A tar filled by `fill`, as a stream to hand to a consumer (putArchive); errors destroy it. */
export function tarStream(fill: (writer: TarWriter) => Promise<void>): Readable {
  const out = new PassThrough();
  writeTar(out, fill).catch((err: Error) => out.destroy(err));
  return out;
}

function writerOf(pack: tar.Pack): TarWriter {
  // A pack destroyed from the output's side (pipeline) ends every entry write under way.
  const closed = new Promise<never>((_, reject) => {
    pack.once('close', () => reject(new ArchiveClosedError()));
  });
  closed.catch(() => undefined);
  return {
    add(header, body) {
      return Promise.race([
        new Promise<void>((resolve, reject) => {
          if (pack.destroyed) return reject(new ArchiveClosedError());
          // The entry fails with the pack when the output goes away mid-archive: listened
          // to, so that reaches this promise rather than the process (an 'error' unheard).
          pack.entry(header, body ?? '', (err) => (err ? reject(err) : resolve())).on('error', reject);
        }),
        closed,
      ]);
    },
    addStream(header, body) {
      if (pack.destroyed) {
        body.destroy();
        return Promise.reject(new ArchiveClosedError());
      }
      const written = new Promise<void>((resolve, reject) => {
        const entry = pack.entry(header, (err) => (err ? reject(err) : resolve()));
        // pipeline: the body's error destroys the entry, the entry's the body.
        pipeline(body, entry).catch(reject);
      });
      return Promise.race([written, closed]).catch((err: unknown) => {
        body.destroy();
        throw err;
      });
    },
  };
}

/**
 * Reads a tar from `input`, calling `onEntry` for each entry in turn; an entry's body not
 * read by it is skipped. `onEntry` may answer 'stop' to end the reading early (the input
 * is then destroyed). Resolves when the archive ended (or was stopped); rejects with the
 * first error of the input, the tar format or `onEntry`, every stream destroyed.
 */
export async function readTar(input: Readable, onEntry: (header: TarHeader, body: Readable) => Promise<void | 'stop'>): Promise<void> {
  const extract = tar.extract();
  let failure: unknown;
  const feeding = pipeline(input, extract).catch((err: unknown) => {
    failure ??= err;
  });
  let stopped = false;
  // What `onEntry` threw says more than the stream error it caused (a destroyed entry
  // destroys the extractor with the same error, which may reach `failure` first): it wins.
  let handlerError: unknown;
  try {
    for await (const entry of extract as AsyncIterable<Readable & { header: TarHeader }>) {
      const answer = await onEntry(entry.header, entry).catch((err: unknown) => {
        handlerError = err;
        throw err;
      });
      if (answer === 'stop') {
        stopped = true;
        break;
      }
      // Whatever onEntry left unread is skipped, so the next header can be reached.
      entry.resume();
    }
  } catch (err) {
    failure ??= err;
  } finally {
    if (stopped || failure !== undefined) {
      extract.destroy();
      input.destroy();
    }
  }
  await feeding;
  if (handlerError !== undefined) throw handlerError;
  if (stopped) return;
  if (failure !== undefined) throw failure;
}

/** A body read whole into memory, up to `max` bytes (past it: `tooLarge()` is thrown, the body destroyed). */
export async function readBody(body: Readable, max: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > max) {
      body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
