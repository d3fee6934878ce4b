import { ArchiveError, quotePath } from './archive-error.js';

interface PathNode {
  /** The component as first seen, letter case preserved. */
  name: string;
  kind: 'file' | 'directory';
  /** Children by lower-cased name, so names differing only in case meet in one slot. */
  children?: Map<string, PathNode>;
}

/**
 * Every path seen in an archive, as a tree of components, to refuse the same path twice,
 * two paths differing only in letter case (they collide on case-insensitive file systems)
 * and a path that is both a file and a directory, including as the parent of another entry.
 * A tree rather than a set of full paths keeps memory proportional to the names' total
 * length, which the entry and name-length limits bound.
 */
export class PathRegistry {
  private readonly root: PathNode = { name: '', kind: 'directory', children: new Map() };

  /**
   * Records one entry. Returns `false` for a directory already known (named by an earlier
   * entry, or implied as a parent): the caller skips the repeat. Throws
   * `archive_duplicate_path` for every other clash.
   */
  add(components: readonly string[], kind: 'file' | 'directory'): boolean {
    let node = this.root;
    for (let i = 0; i < components.length; i++) {
      const name = components[i] as string;
      const isLeaf = i === components.length - 1;
      const wanted = isLeaf ? kind : 'directory';
      node.children ??= new Map();
      const key = name.toLowerCase();
      const existing = node.children.get(key);
      if (existing === undefined) {
        const created: PathNode = { name, kind: wanted };
        node.children.set(key, created);
        node = created;
        continue;
      }
      const path = components.slice(0, i + 1).join('/');
      const existingPath = [...components.slice(0, i), existing.name].join('/');
      if (existing.name !== name) {
        throw duplicate(
          path,
          `${quotePath(path)} and ${quotePath(existingPath)} differ only in letter case, so they would overwrite each other on a case-insensitive file system. Rename one of them.`,
        );
      }
      if (existing.kind === 'file') {
        throw duplicate(
          path,
          wanted === 'file'
            ? `${quotePath(path)} appears more than once in the archive. Re-create the archive from a clean directory so each file appears once.`
            : `${quotePath(path)} is a file and also used as a directory. Re-create the archive from a clean directory.`,
        );
      }
      if (wanted === 'file') {
        throw duplicate(path, `${quotePath(path)} is a directory and also a file. Re-create the archive from a clean directory.`);
      }
      if (isLeaf) return false;
      node = existing;
    }
    return true;
  }
}

function duplicate(path: string, message: string): ArchiveError {
  return new ArchiveError('archive_duplicate_path', message, { details: { path } });
}
