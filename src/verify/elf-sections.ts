/**
 * Section and program headers of an ELF file (32/64-bit, little or big endian), read from
 * untrusted bytes: every offset and count is checked against the buffer before it is used,
 * and anything inconsistent throws ElfFormatError, never another kind of exception.
 */

export const SHT_NOBITS = 8;
export const PT_LOAD = 1;
export const PF_X = 1;
export const PF_W = 2;

export interface ElfSection {
  name: string;
  type: number;
  /** The low 32 bits of sh_flags (all flags Linux defines live there). */
  flags: number;
  addr: number;
  offset: number;
  size: number;
  /** sh_link: for a symbol table, the index of its string table. */
  link: number;
  /** sh_entsize: the size of one entry of a table section (0 when it holds none). */
  entsize: number;
}

export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
}

export interface ElfFile {
  is64: boolean;
  littleEndian: boolean;
  type: number;
  machine: number;
  sections: ElfSection[];
  segments: ElfSegment[];
}

/** The bytes are not a well-formed ELF file; `message` says which part is wrong. */
export class ElfFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ElfFormatError';
  }
}

// Go executables and plugins have about 50 sections and at most 16 segments. A symbol's
// bytes are found by walking the segments (readAtAddress), so the segment cap bounds the
// work per symbol; both stop a crafted header from making a request loop over tens of
// thousands of entries on the API's event loop (docs/decisions.md, "Host matching").
const MAX_SECTIONS = 1024;
const MAX_SEGMENTS = 32;
const MAX_SECTION_NAME = 4096;
const SHN_XINDEX = 0xffff;
const PN_XNUM = 0xffff;

/** Bounds-checked, endian-aware reads; 64-bit values above 2^53 are refused. */
class Reader {
  constructor(
    readonly bytes: Buffer,
    readonly littleEndian: boolean,
  ) {}

  private check(offset: number, size: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + size > this.bytes.length) {
      throw new ElfFormatError(`a header field at byte ${offset} lies beyond the end of the file (${this.bytes.length} bytes)`);
    }
  }

  u16(offset: number): number {
    this.check(offset, 2);
    return this.littleEndian ? this.bytes.readUInt16LE(offset) : this.bytes.readUInt16BE(offset);
  }

  u32(offset: number): number {
    this.check(offset, 4);
    return this.littleEndian ? this.bytes.readUInt32LE(offset) : this.bytes.readUInt32BE(offset);
  }

  u64(offset: number): number {
    this.check(offset, 8);
    const v = this.littleEndian ? this.bytes.readBigUInt64LE(offset) : this.bytes.readBigUInt64BE(offset);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfFormatError(`a 64-bit field at byte ${offset} is out of range`);
    return Number(v);
  }

  /** An address-sized field: 4 bytes in ELFCLASS32, 8 in ELFCLASS64. */
  word(offset: number, is64: boolean): number {
    return is64 ? this.u64(offset) : this.u32(offset);
  }
}

/** Throws unless [offset, offset+size) lies inside a buffer of `length` bytes. */
function checkRange(what: string, offset: number, size: number, length: number): void {
  if (offset < 0 || size < 0 || offset > length || size > length - offset) {
    throw new ElfFormatError(`${what} (bytes ${offset}..${offset + size}) lies beyond the end of the file (${length} bytes)`);
  }
}

/** Parses the ELF header, the section headers with their names, and the program headers. */
export function readElfFile(bytes: Buffer): ElfFile {
  if (bytes.length < 16 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw new ElfFormatError('it does not start with the ELF magic \\x7fELF');
  }
  const elfClass = bytes[4];
  const encoding = bytes[5];
  if (elfClass !== 1 && elfClass !== 2) throw new ElfFormatError(`unknown ELF class ${elfClass}`);
  if (encoding !== 1 && encoding !== 2) throw new ElfFormatError(`unknown ELF data encoding ${encoding}`);
  if (bytes[6] !== 1) throw new ElfFormatError(`unknown ELF version ${bytes[6]}`);
  const is64 = elfClass === 2;
  const r = new Reader(bytes, encoding === 1);

  const headerSize = is64 ? 64 : 52;
  checkRange('the ELF header', 0, headerSize, bytes.length);
  const type = r.u16(16);
  const machine = r.u16(18);
  const phoff = r.word(is64 ? 32 : 28, is64);
  const shoff = r.word(is64 ? 40 : 32, is64);
  const at = is64 ? 52 : 40; // e_ehsize; the 16-bit fields follow it
  const phentsize = r.u16(at + 2);
  let phnum = r.u16(at + 4);
  const shentsize = r.u16(at + 6);
  let shnum = r.u16(at + 8);
  let shstrndx = r.u16(at + 10);

  const wantShentsize = is64 ? 64 : 40;

  // Extended numbering: when the counts do not fit in 16 bits, section 0 holds them.
  if (shoff !== 0) {
    if (shentsize < wantShentsize) throw new ElfFormatError(`section header entry size ${shentsize} is smaller than ${wantShentsize}`);
    checkRange('section header 0', shoff, wantShentsize, bytes.length);
    if (shnum === 0) shnum = r.word(shoff + (is64 ? 32 : 20), is64);
    if (shstrndx === SHN_XINDEX) shstrndx = r.u32(shoff + (is64 ? 40 : 24));
    if (phnum === PN_XNUM) phnum = r.u32(shoff + (is64 ? 44 : 28));
  } else if (shnum !== 0) {
    throw new ElfFormatError(`${shnum} section headers announced at offset 0`);
  }

  const segments = readSegments(r, bytes.length, is64, { offset: phoff, count: phnum, entsize: phentsize });
  const sections = readSections(r, bytes, is64, { offset: shoff, count: shnum, entsize: shentsize }, shstrndx);

  return { is64, littleEndian: encoding === 1, type, machine, sections, segments };
}

/** The program header table (a table's offset, entry count and entry size, from the ELF header). */
function readSegments(r: Reader, length: number, is64: boolean, table: { offset: number; count: number; entsize: number }): ElfSegment[] {
  const { offset: phoff, count: phnum, entsize: phentsize } = table;
  const wantPhentsize = is64 ? 56 : 32;
  const segments: ElfSegment[] = [];
  if (phnum > 0) {
    if (phnum > MAX_SEGMENTS) throw new ElfFormatError(`${phnum} program headers is more than plugforge reads (${MAX_SEGMENTS})`);
    if (phentsize < wantPhentsize) throw new ElfFormatError(`program header entry size ${phentsize} is smaller than ${wantPhentsize}`);
    checkRange('the program header table', phoff, phnum * phentsize, length);
    for (let i = 0; i < phnum; i++) {
      const p = phoff + i * phentsize;
      segments.push(
        is64
          ? { type: r.u32(p), flags: r.u32(p + 4), offset: r.u64(p + 8), vaddr: r.u64(p + 16), filesz: r.u64(p + 32), memsz: r.u64(p + 40) }
          : {
              type: r.u32(p),
              offset: r.u32(p + 4),
              vaddr: r.u32(p + 8),
              filesz: r.u32(p + 16),
              memsz: r.u32(p + 20),
              flags: r.u32(p + 24),
            },
      );
    }
  }

  return segments;
}

/** The section header table with each section's name (from the section name table, index `shstrndx`). */
function readSections(
  r: Reader,
  bytes: Buffer,
  is64: boolean,
  table: { offset: number; count: number; entsize: number },
  shstrndx: number,
): ElfSection[] {
  const { offset: shoff, count: shnum, entsize: shentsize } = table;
  const sections: ElfSection[] = [];
  if (shnum > 0) {
    if (shnum > MAX_SECTIONS) throw new ElfFormatError(`${shnum} section headers is more than plugforge reads (${MAX_SECTIONS})`);
    checkRange('the section header table', shoff, shnum * shentsize, bytes.length);
    if (shstrndx >= shnum) throw new ElfFormatError(`section name table index ${shstrndx} is not below the section count ${shnum}`);
    const raw: (Omit<ElfSection, 'name'> & { nameOffset: number })[] = [];
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shentsize;
      raw.push(
        is64
          ? {
              nameOffset: r.u32(s),
              type: r.u32(s + 4),
              flags: r.u32(s + 8),
              addr: r.u64(s + 16),
              offset: r.u64(s + 24),
              size: r.u64(s + 32),
              link: r.u32(s + 40),
              entsize: r.u64(s + 56),
            }
          : {
              nameOffset: r.u32(s),
              type: r.u32(s + 4),
              flags: r.u32(s + 8),
              addr: r.u32(s + 12),
              offset: r.u32(s + 16),
              size: r.u32(s + 20),
              link: r.u32(s + 24),
              entsize: r.u32(s + 36),
            },
      );
    }
    // Index 0 (SHN_UNDEF) means the file has no section names.
    const strtab = shstrndx === 0 ? undefined : raw[shstrndx];
    if (strtab) {
      if (strtab.type === SHT_NOBITS) throw new ElfFormatError('the section name table has no bytes in the file');
      checkRange('the section name table', strtab.offset, strtab.size, bytes.length);
    }
    for (const { nameOffset, ...section } of raw) {
      sections.push({ name: strtab ? sectionName(bytes, strtab.offset, strtab.size, nameOffset) : '', ...section });
    }
  }
  return sections;
}

function sectionName(bytes: Buffer, tableOffset: number, tableSize: number, nameOffset: number): string {
  if (nameOffset >= tableSize) throw new ElfFormatError(`a section name offset (${nameOffset}) lies outside the section name table`);
  const start = tableOffset + nameOffset;
  const limit = Math.min(tableOffset + tableSize, start + MAX_SECTION_NAME);
  const end = bytes.indexOf(0, start);
  if (end < 0 || end >= limit)
    throw new ElfFormatError(`the section name at offset ${nameOffset} is not NUL-terminated within ${MAX_SECTION_NAME} bytes`);
  return bytes.toString('latin1', start, end);
}

/** The file bytes of a section (a view, not a copy); throws if they lie outside the file. */
export function sectionBytes(bytes: Buffer, section: ElfSection): Buffer {
  if (section.type === SHT_NOBITS) return bytes.subarray(0, 0);
  checkRange(`section ${section.name || '(unnamed)'}`, section.offset, section.size, bytes.length);
  return bytes.subarray(section.offset, section.offset + section.size);
}

/** The file bytes of a segment (a view, not a copy); throws if they lie outside the file. */
export function segmentBytes(bytes: Buffer, segment: ElfSegment): Buffer {
  checkRange('a loadable segment', segment.offset, segment.filesz, bytes.length);
  return bytes.subarray(segment.offset, segment.offset + segment.filesz);
}

/**
 * Up to `size` bytes at virtual address `addr`, from the first segment whose file image
 * contains it (as Go's debug/buildinfo reads them); undefined when no segment maps it.
 */
export function readAtAddress(bytes: Buffer, file: ElfFile, addr: number, size: number): Buffer | undefined {
  for (const p of file.segments) {
    if (p.filesz > 0 && p.vaddr <= addr && addr - p.vaddr < p.filesz) {
      const data = segmentBytes(bytes, p);
      const start = addr - p.vaddr;
      return data.subarray(start, start + Math.min(size, p.filesz - start));
    }
  }
  return undefined;
}
