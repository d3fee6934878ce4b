import { IGNORE_FILE, IgnoreRules } from '../src/client/ignore-rules.js';
import { tarGz, type TarEntry } from './tar-writer.js';

/**
 * A plugin folder chosen in the browser, packed as `plugforge build DIR` packs it: the same
 * ignore rules (src/client/ignore-rules.ts itself: the built-in ones, then the folder's
 * .plugforgeignore), the same names relative to the folder, go.mod required at the top.
 */

export interface FolderFile {
  /** Relative to the chosen folder, `/`-separated. */
  path: string;
  file: Blob;
}

export interface PackedFolder {
  archive: Blob;
  files: number;
  bytes: number;
  /** Files left out by the ignore rules (or inside a directory they leave out). */
  ignored: number;
}

/**
 * The files of an `<input type=file webkitdirectory>`: each File's webkitRelativePath starts
 * with the chosen folder's own name, which is not part of the archive.
 */
export function filesOfDirectoryInput(list: FileList): FolderFile[] {
  return [...list].map((file) => ({ path: file.webkitRelativePath.split('/').slice(1).join('/') || file.name, file }));
}

export async function packFolder(all: readonly FolderFile[]): Promise<PackedFolder> {
  const ignoreFile = all.find((f) => f.path === IGNORE_FILE);
  const rules = IgnoreRules.from(ignoreFile ? await ignoreFile.file.text() : undefined);
  const kept = all.filter((f) => !leftOut(rules, f.path));
  if (!kept.some((f) => f.path === 'go.mod')) {
    throw new Error("The folder has no go.mod at its top: choose the plugin module's own folder (the one holding go.mod).");
  }
  // Byte order of the names, as the CLI walks: the same folder gives the same archive.
  kept.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const entries: TarEntry[] = kept.map((f) => ({ name: f.path, data: f.file }));
  return {
    archive: await tarGz(entries),
    files: kept.length,
    bytes: kept.reduce((n, f) => n + f.file.size, 0),
    ignored: all.length - kept.length,
  };
}

/** As the CLI's walk: a file is out when a directory above it is, or when the rules leave it out. */
function leftOut(rules: IgnoreRules, path: string): boolean {
  const parts = path.split('/');
  for (let i = 1; i < parts.length; i++) {
    if (rules.ignores(parts.slice(0, i).join('/'), true)) return true;
  }
  return rules.ignores(path, false);
}
