import type { StoredBlob } from '../store/blob-store.js';
import type { BlobStore } from '../store/blob-store.js';
import { readGoBuildInfo, type GoBuildInfo } from '../verify/go-buildinfo.js';

/**
 * The Go build info of a stored artifact without holding the artifact in memory (an
 * artifact may be hundreds of MiB; docs/decisions.md, "Provenance is made when asked").
 * The build info is one small section, `.go.buildinfo`, found through the ELF header and
 * section headers: the pass that signs the artifact keeps its first and last bytes
 * (ArtifactWindows), where linkers put those headers; whatever lies elsewhere is read by a
 * pass of its own that keeps only those bytes. Bounded whatever the bytes: past the caps
 * below the artifact has no build info here (and so no SBOM), as one without any.
 */
const HEAD_BYTES = 64 * 1024;
const TAIL_BYTES = 256 * 1024;
const MAX_SECTIONS = 1024;
const MAX_NAME_TABLE_BYTES = 64 * 1024;
/** Go writes version and module list inline in the section; a large program's is a few hundred KiB. */
const MAX_BUILDINFO_BYTES = 4 * 1024 * 1024;

/** The first and last bytes of an artifact, kept while it streams by. */
export class ArtifactWindows {
  private head = Buffer.alloc(0);
  private readonly tail: Buffer[] = [];
  private tailBytes = 0;
  private seen = 0;

  push(chunk: Buffer): void {
    if (this.head.length < HEAD_BYTES) this.head = Buffer.concat([this.head, chunk.subarray(0, HEAD_BYTES - this.head.length)]);
    this.seen += chunk.length;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tail.length > 1 && this.tailBytes - this.tail[0]!.length >= TAIL_BYTES) this.tailBytes -= this.tail.shift()!.length;
  }

  /** The bytes [start, start + length) when a window holds them all. */
  slice(start: number, length: number): Buffer | undefined {
    if (start + length <= this.head.length) return this.head.subarray(start, start + length);
    const tailStart = this.seen - this.tailBytes;
    if (start >= tailStart && start + length <= this.seen)
      return Buffer.concat(this.tail).subarray(start - tailStart, start - tailStart + length);
    return undefined;
  }
}

/** The artifact's Go build info; undefined when it has none that can be read within the caps. */
export async function artifactBuildInfo(
  store: Pick<BlobStore, 'open'>,
  artifact: StoredBlob,
  windows: ArtifactWindows,
): Promise<GoBuildInfo | undefined> {
  const read = async (start: number, length: number) =>
    start + length > artifact.size ? undefined : (windows.slice(start, length) ?? (await readRange(store, artifact.sha256, start, length)));
  const section = await findBuildInfoSection(read);
  const bytes = section && section.size <= MAX_BUILDINFO_BYTES ? await read(section.offset, section.size) : undefined;
  if (!bytes) return undefined;
  try {
    return readGoBuildInfo(elfOfSection(bytes));
  } catch {
    // Not ours to refuse now: the ELF check let the artifact through (build-evidence.ts).
    return undefined;
  }
}

type Read = (start: number, length: number) => Promise<Buffer | undefined>;

/** Where `.go.buildinfo` lies in the file, from the ELF header and the section headers; undefined for anything unexpected. */
async function findBuildInfoSection(read: Read): Promise<{ offset: number; size: number } | undefined> {
  const h = await read(0, 64);
  if (!h || h.readUInt32BE(0) !== 0x7f454c46 || (h[4] !== 1 && h[4] !== 2) || (h[5] !== 1 && h[5] !== 2)) return undefined;
  const is64 = h[4] === 2;
  const le = h[5] === 1;
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const word = (b: Buffer, o: number) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
  const [shoff, shentsize, shnum, shstrndx] = [
    word(h, is64 ? 40 : 32),
    u16(h, is64 ? 58 : 46),
    u16(h, is64 ? 60 : 48),
    u16(h, is64 ? 62 : 50),
  ];
  // The entry size linkers write, exactly: a larger one would only make the table to read larger.
  if (!shoff || !shnum || shnum > MAX_SECTIONS || shentsize !== (is64 ? 64 : 40) || shstrndx >= shnum) return undefined;
  const table = await read(shoff, shnum * shentsize);
  if (!table) return undefined;
  const entry = (i: number) => ({
    name: u32(table, i * shentsize),
    offset: word(table, i * shentsize + (is64 ? 24 : 16)),
    size: word(table, i * shentsize + (is64 ? 32 : 20)),
  });
  const names = entry(shstrndx);
  const nameTable = names.size <= MAX_NAME_TABLE_BYTES ? await read(names.offset, names.size) : undefined;
  if (!nameTable) return undefined;
  const wanted = Buffer.from('.go.buildinfo\0', 'latin1');
  for (let i = 0; i < shnum; i++) {
    const e = entry(i);
    if (nameTable.subarray(e.name, e.name + wanted.length).equals(wanted)) return e;
  }
  return undefined;
}

/** Only the bytes [start, start + length) of a stored blob, read by a pass that keeps nothing else and stops there. */
async function readRange(store: Pick<BlobStore, 'open'>, sha256: string, start: number, length: number): Promise<Buffer | undefined> {
  const { stream } = await store.open(sha256);
  const out = Buffer.alloc(length);
  let at = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const from = Math.max(start - at, 0);
      const to = Math.min(start + length - at, chunk.length);
      if (to > from) chunk.copy(out, at + from - start, from, to);
      at += chunk.length;
      if (at >= start + length) return out;
    }
  } finally {
    stream.destroy();
  }
  return undefined;
}

/**
 * The section alone as a small ELF file of its own (64-bit, little endian: a null section,
 * the name table, then `.go.buildinfo` holding `section`), so that the one reader of Go build
 * info (src/verify/go-buildinfo.ts) reads it as it reads any executable.
 */
function elfOfSection(section: Buffer): Buffer {
  const names = Buffer.from('\0.shstrtab\0.go.buildinfo\0', 'latin1');
  const header = Buffer.alloc(64 + 3 * 64);
  header.write('\x7fELF', 0, 'latin1');
  header.set([2, 1, 1], 4);
  header.writeUInt16LE(3, 16);
  header.writeUInt16LE(62, 18);
  header.writeUInt32LE(1, 20);
  header.writeBigUInt64LE(64n, 40);
  header.writeUInt16LE(64, 52);
  header.writeUInt16LE(64, 58);
  header.writeUInt16LE(3, 60);
  header.writeUInt16LE(1, 62);
  const entry = (i: number, name: number, type: number, offset: number, size: number) => {
    header.writeUInt32LE(name, 64 + i * 64);
    header.writeUInt32LE(type, 64 + i * 64 + 4);
    header.writeBigUInt64LE(BigInt(offset), 64 + i * 64 + 24);
    header.writeBigUInt64LE(BigInt(size), 64 + i * 64 + 32);
  };
  entry(1, 1, 3, header.length, names.length);
  entry(2, 11, 1, header.length + names.length, section.length);
  return Buffer.concat([header, names, section]);
}
