export interface ArchiveLimits {
  /** Tar entries of any kind (files, directories, anything refused), default 10 000. */
  maxEntries: number;
  /** Bytes of one regular file, default 64 MiB. */
  maxFileBytes: number;
  /** Bytes of all regular files together, default 512 MiB. */
  maxTotalBytes: number;
  /** Path components of one entry, default 32. */
  maxDepth: number;
  /** Bytes (UTF-8) of one entry's whole path as written in the archive, default 1024. */
  maxNameLength: number;
}

export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxEntries: 10_000,
  maxFileBytes: 64 * 1024 * 1024,
  maxTotalBytes: 512 * 1024 * 1024,
  maxDepth: 32,
  maxNameLength: 1024,
});

/** go.mod is read into memory, so it has its own cap. */
export const MAX_GO_MOD_BYTES = 64 * 1024;

/** Defaults filled in; a limit that is not a positive integer is a programming error. */
export function resolveArchiveLimits(overrides: Partial<ArchiveLimits> = {}): ArchiveLimits {
  const limits: ArchiveLimits = { ...DEFAULT_ARCHIVE_LIMITS };
  for (const key of Object.keys(DEFAULT_ARCHIVE_LIMITS) as (keyof ArchiveLimits)[]) {
    const value = overrides[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`archive limit ${key} must be a positive integer, got ${String(value)}`);
    }
    limits[key] = value;
  }
  return limits;
}

const BLOCK = 512;

/**
 * The most tar bytes (what comes out of gunzip) an archive within `limits` can need: the
 * contents, plus per entry a header, a pax header carrying the longest allowed name (and some
 * room for other pax records), and padding to the block size, plus 1 MiB for end-of-archive
 * blocks and record padding. Anything that inflates beyond this is cut off, whatever its
 * headers claim, which is what stops a gzip bomb of zero blocks.
 */
export function inflatedByteBudget(limits: ArchiveLimits): number {
  const perEntry = 4 * BLOCK + Math.ceil((limits.maxNameLength + 2 * BLOCK) / BLOCK) * BLOCK;
  return limits.maxTotalBytes + limits.maxEntries * perEntry + 1024 * 1024;
}

/**
 * The most gzip bytes accepted: deflate never expands data by more than a few bytes per
 * 64 KiB block, so anything past this is padding, junk after the gzip data or endless empty
 * gzip members, none of which inflates and so none of which the inflated budget would catch.
 */
export function compressedByteBudget(limits: ArchiveLimits): number {
  const inflated = inflatedByteBudget(limits);
  return inflated + Math.ceil(inflated / 100) + 64 * 1024;
}
