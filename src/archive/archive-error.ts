import { PlugforgeError } from '../errors/plugforge-error.js';

/** Every way an uploaded source archive can be refused. */
export const ARCHIVE_ERROR_CODES = [
  'archive_not_gzip',
  'archive_corrupt',
  'archive_truncated',
  'archive_not_tar',
  'archive_empty',
  'archive_symlink',
  'archive_hardlink',
  'archive_device',
  'archive_fifo',
  'archive_unsupported_entry',
  'archive_absolute_path',
  'archive_parent_path',
  'archive_bad_name',
  'archive_name_too_long',
  'archive_too_deep',
  'archive_too_many_entries',
  'archive_file_too_large',
  'archive_too_large',
  'archive_duplicate_path',
  'archive_no_go_mod',
  'archive_bad_go_mod',
  'archive_repack_failed',
] as const;
export type ArchiveErrorCode = (typeof ARCHIVE_ERROR_CODES)[number];

/**
 * A refused or failed source upload. Everything caused by the archive itself is final
 * (status 400, or 413 for size caps); `archive_repack_failed` is ours (disk full, a vanished
 * directory), status 500 and retryable.
 */
export class ArchiveError extends PlugforgeError {
  declare readonly code: ArchiveErrorCode;

  constructor(
    code: ArchiveErrorCode,
    message: string,
    options: { status?: number; retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(code, message, options);
    this.name = 'ArchiveError';
  }
}

/** A path from an archive, quoted for a message: escapes control characters, caps the length. */
export function quotePath(path: string): string {
  const quoted = JSON.stringify(path).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return quoted.length > 200 ? `${quoted.slice(0, 180)}…" (${Buffer.byteLength(path)} bytes)` : quoted;
}
