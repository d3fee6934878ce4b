import type { Readable } from 'node:stream';

export interface StoredBlob {
  sha256: string;
  size: number;
}

/** What a build worker does with blobs: reads sources (and host fingerprints), stores artifacts. */
export type WorkerBlobs = Pick<BlobStore, 'open' | 'put'>;

/**
 * Content-addressed storage of source archives and artifacts, by sha256.
 * Writes are atomic: a blob is either absent or complete, never half-written. Storing the
 * same content twice is a no-op. Safe for concurrent use by several processes sharing it.
 */
export interface BlobStore {
  /** A path for a temporary file on the same filesystem as the store (for adopt). */
  tempPath(hint: string): string;
  /** Moves a finished temp file into the store under its sha256 (which the caller computed). */
  adopt(tempPath: string, blob: StoredBlob): Promise<void>;
  /** Streams `input` into the store, computing sha256 and size; rejects (and keeps nothing) on a stream error or when over maxBytes. */
  put(input: Readable, options?: { maxBytes?: number }): Promise<StoredBlob>;
  has(sha256: string): Promise<boolean>;
  /** Opens a stored blob; rejects with a not-found PlugforgeError when absent. */
  open(sha256: string): Promise<{ stream: Readable; size: number }>;
  /** Removes the temp file, ignoring one already gone. */
  discard(tempPath: string): Promise<void>;
  /** Every stored blob, with when it was last written (ms since the epoch). */
  list(): AsyncIterable<StoredBlob & { writtenAt: number }>;
  /** Temp files (uploads being received, writes under way or abandoned by a crash), with when each was last written. */
  listTemps(): AsyncIterable<{ path: string; writtenAt: number }>;
  /**
   * Removes a blob unless it was written after `writtenBefore`: storing the same content
   * again (adopt, put) while this runs wins, and the blob stays. Resolves to the bytes
   * freed, 0 when the blob was kept or already gone. Idempotent.
   */
  remove(sha256: string, writtenBefore: number): Promise<number>;
}
