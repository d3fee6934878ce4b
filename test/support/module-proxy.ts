import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';

/**
 * A Go module proxy on disk (GOPROXY=file://…), made from real module source such as
 * Debian's golang-*-dev packages under /usr/share/gocode/src. Layout and zips follow
 * https://go.dev/ref/mod#goproxy-protocol and the module zip rules Go checks: every file
 * under "<module>@<version>/", go.mod at the root, no directories holding another go.mod,
 * no vendor/ or .git, regular files only.
 */
export interface ProxyModule {
  path: string;
  version: string;
  /** Directory holding the module's source (its go.mod at the top). */
  srcDir: string;
  /** Replaces the go.mod of srcDir (e.g. to require the versions the proxy has). */
  goMod?: string;
}

/** Go's case encoding of module paths in proxy URLs: "A" becomes "!a". */
export function escapeModulePath(p: string): string {
  return p.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

export async function writeModuleProxy(dir: string, modules: ProxyModule[]): Promise<void> {
  const versions = new Map<string, string[]>();
  for (const m of modules) {
    const base = path.join(dir, escapeModulePath(m.path), '@v');
    await mkdir(base, { recursive: true });
    const goMod = m.goMod ?? (await readFile(path.join(m.srcDir, 'go.mod'), 'utf8'));
    const files = await moduleFiles(m.srcDir);
    const entries: { name: string; data: Buffer }[] = [];
    for (const rel of files) {
      const data = rel === 'go.mod' ? Buffer.from(goMod) : await readFile(path.join(m.srcDir, rel));
      entries.push({ name: `${m.path}@${m.version}/${rel}`, data });
    }
    if (!files.includes('go.mod')) entries.push({ name: `${m.path}@${m.version}/go.mod`, data: Buffer.from(goMod) });
    await writeFile(path.join(base, `${m.version}.zip`), storedZip(entries));
    await writeFile(path.join(base, `${m.version}.mod`), goMod);
    await writeFile(path.join(base, `${m.version}.info`), JSON.stringify({ Version: m.version, Time: '2024-01-01T00:00:00Z' }));
    versions.set(m.path, [...(versions.get(m.path) ?? []), m.version]);
  }
  for (const [p, vs] of versions) await writeFile(path.join(dir, escapeModulePath(p), '@v', 'list'), `${vs.join('\n')}\n`);
}

/** The module's files, relative, sorted; leaving out nested modules, vendor/, VCS and non-regular files. */
async function moduleFiles(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(path.join(root, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const r = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (['.git', '.hg', '.svn', '.bzr', 'vendor'].includes(entry.name)) continue;
      // A subdirectory with its own go.mod is another module.
      if (
        await stat(path.join(root, r, 'go.mod')).then(
          () => true,
          () => false,
        )
      )
        continue;
      out.push(...(await moduleFiles(root, r)));
    } else if (entry.isFile()) {
      out.push(r);
    }
  }
  return out;
}

/** A zip archive with every entry stored (no compression), which Go's zip reader accepts. */
export function storedZip(entries: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  const dosTime = 0; // 1980-01-01 00:00
  const dosDate = (0 << 9) | (1 << 5) | 1;
  for (const { name, data } of entries) {
    const nameBuf = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(dosTime, 10);
    local.writeUInt16LE(dosDate, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, nameBuf, data);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(dosTime, 12);
    central.writeUInt16LE(dosDate, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt32LE(0o100644 * 0x10000, 38); // external attributes: a regular file, rw-r--r--
    central.writeUInt32LE(offset, 42);
    centrals.push(central, nameBuf);
    offset += 30 + nameBuf.length + data.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}
