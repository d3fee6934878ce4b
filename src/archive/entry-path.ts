import { ArchiveError, quotePath } from './archive-error.js';
import type { ArchiveLimits } from './archive-limits.js';

/** Longest single path component most file systems accept (NAME_MAX). */
const MAX_COMPONENT_BYTES = 255;

export interface EntryPath {
  /** Clean components: no `.`, no empty ones. Empty for the archive root (`./`). */
  components: string[];
  /** The name as written ended in `/`. */
  trailingSlash: boolean;
}

/**
 * Checks one tar entry name and returns its clean components. Pure: the only state it needs
 * is the name. Throws `ArchiveError` naming the entry for names that are absolute, climb out
 * with `..`, carry NUL, backslashes, control characters or invalid UTF-8 (decoded as U+FFFD),
 * or exceed the length and depth limits. `./` prefixes, `.` components and repeated slashes
 * are normalised away.
 */
export function normalizeEntryPath(name: string, limits: Pick<ArchiveLimits, 'maxNameLength' | 'maxDepth'>): EntryPath {
  const bytes = Buffer.byteLength(name);
  if (bytes > limits.maxNameLength) {
    throw new ArchiveError(
      'archive_name_too_long',
      `Entry name ${quotePath(name)} is ${bytes} bytes long; the limit is ${limits.maxNameLength}. Shorten the path.`,
      { details: { path: name, limit: limits.maxNameLength } },
    );
  }
  if (name === '') {
    throw new ArchiveError('archive_bad_name', 'The archive holds an entry with an empty name. Re-create the archive with tar.');
  }
  // eslint-disable-next-line no-control-regex -- control characters are what this refuses in a name
  const bad = /[\u0000-\u001f\u007f-\u009f\\\ufffd]/.exec(name);
  if (bad) {
    const what =
      bad[0] === '\u0000'
        ? 'a NUL byte'
        : bad[0] === '\\'
          ? 'a backslash'
          : bad[0] === '\ufffd'
            ? 'bytes that are not valid UTF-8'
            : 'a control character';
    throw new ArchiveError(
      'archive_bad_name',
      `Entry name ${quotePath(name)} contains ${what}. Use only printable UTF-8 in file names, with "/" between directories.`,
      { details: { path: name } },
    );
  }
  if (name.startsWith('/')) {
    throw new ArchiveError(
      'archive_absolute_path',
      `Entry ${quotePath(name)} has an absolute path. Pack the archive from inside the plugin directory (tar -C <dir> -czf source.tar.gz .).`,
      { details: { path: name } },
    );
  }
  const raw = name.split('/');
  if (raw.includes('..')) {
    throw new ArchiveError(
      'archive_parent_path',
      `Entry ${quotePath(name)} contains a ".." component, which would point outside the source tree. Pack only files inside the plugin directory.`,
      { details: { path: name } },
    );
  }
  const components = raw.filter((part) => part !== '' && part !== '.');
  const long = components.find((part) => Buffer.byteLength(part) > MAX_COMPONENT_BYTES);
  if (long !== undefined) {
    throw new ArchiveError(
      'archive_name_too_long',
      `Entry ${quotePath(name)} has a path component longer than ${MAX_COMPONENT_BYTES} bytes. Shorten the file or directory name.`,
      { details: { path: name, limit: MAX_COMPONENT_BYTES } },
    );
  }
  if (components.length > limits.maxDepth) {
    throw new ArchiveError(
      'archive_too_deep',
      `Entry ${quotePath(name)} is ${components.length} directories deep; the limit is ${limits.maxDepth}. Flatten the directory tree.`,
      { details: { path: name, limit: limits.maxDepth } },
    );
  }
  return { components, trailingSlash: name.endsWith('/') };
}
