/**
 * Crafted x86-64 ELF host executables for the parsing tests: a well-formed header and Go
 * build info (go1.22.12, cgo, linux/amd64), so a reader gets past them, then whatever a
 * hostile tenant chooses: many section headers that all name one large dynamic symbol
 * table, many program headers in front of the one that maps the symbols' bytes, and
 * symbols that all claim to be package fingerprints (go:link.pkghashbytes.*).
 */
export interface HostileElfShape {
  /** Section headers in all (the null section, the name table, .go.buildinfo, .dynstr, then dynamic symbol tables). */
  sections: number;
  /** Entries of the one symbol area every dynamic symbol table points at (each a fingerprint symbol). */
  symbols: number;
  /** Program headers; only the last maps the file, so each symbol's bytes are found after walking them all. */
  segments: number;
}

const EHDR = 64;
const PHDR = 56;
const SHDR = 64;
const SYM = 24;
const BASE = 0x400000;
const SHT_STRTAB = 3;
const SHT_PROGBITS = 1;
const SHT_DYNSYM = 11;
const PT_LOAD = 1;

const MODINFO =
  'path\texample.com/host\nmod\texample.com/host\t(devel)\t\nbuild\t-buildmode=exe\nbuild\tCGO_ENABLED=1\nbuild\tGOARCH=amd64\nbuild\tGOOS=linux\n';

/** The .go.buildinfo blob of Go 1.18+ (inline strings), its modinfo framed by the 16-byte sentinels. */
function buildInfoBlob(): Buffer {
  const header = Buffer.alloc(32);
  Buffer.from('\xff Go buildinf:', 'latin1').copy(header);
  header[14] = 8;
  header[15] = 2;
  const version = Buffer.from('go1.22.12');
  const modinfo = Buffer.concat([Buffer.alloc(16, 0x30), Buffer.from(MODINFO), Buffer.alloc(16, 0x31)]);
  return Buffer.concat([header, uvarint(version.length), version, uvarint(modinfo.length), modinfo]);
}

function uvarint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

const align = (n: number, to: number) => Math.ceil(n / to) * to;

/** Builds the file; its size is about symbols × 24 + sections × 64 + segments × 56 bytes. */
export function hostileElf(shape: HostileElfShape): Buffer {
  const shstrtab = Buffer.from('\0.shstrtab\0.go.buildinfo\0.dynstr\0.dynsym\0');
  const dynstr = Buffer.from('\0go:link.pkghashbytes.example.com/p\0');
  const blob = buildInfoBlob();
  const phoff = EHDR;
  const shstrOff = phoff + shape.segments * PHDR;
  const blobOff = align(shstrOff + shstrtab.length, 16);
  const dynstrOff = blobOff + blob.length;
  const dataOff = align(dynstrOff + dynstr.length, 8);
  const symOff = dataOff + 8;
  const shoff = align(symOff + shape.symbols * SYM, 8);
  const size = shoff + shape.sections * SHDR;
  const b = Buffer.alloc(size);

  b.write('\x7fELF', 0, 'latin1');
  b[4] = 2; // ELFCLASS64
  b[5] = 1; // little-endian
  b[6] = 1;
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(62, 18); // x86-64
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(BigInt(phoff), 32);
  b.writeBigUInt64LE(BigInt(shoff), 40);
  b.writeUInt16LE(EHDR, 52);
  b.writeUInt16LE(PHDR, 54);
  // Past 0xfffe entries the counts move to section header 0 (extended numbering).
  b.writeUInt16LE(shape.segments >= 0xffff ? 0xffff : shape.segments, 56);
  b.writeUInt16LE(SHDR, 58);
  b.writeUInt16LE(shape.sections >= 0xff00 ? 0 : shape.sections, 60);
  b.writeUInt16LE(1, 62); // .shstrtab

  for (let i = 0; i < shape.segments; i++) {
    const p = phoff + i * PHDR;
    const last = i === shape.segments - 1;
    b.writeUInt32LE(PT_LOAD, p);
    b.writeUInt32LE(4, p + 4);
    b.writeBigUInt64LE(0n, p + 8);
    // Every segment but the last maps a page far below the symbols' bytes.
    b.writeBigUInt64LE(BigInt(last ? BASE : 0x1000 + i * 0x10), p + 16);
    b.writeBigUInt64LE(BigInt(last ? size : 0x10), p + 32);
    b.writeBigUInt64LE(BigInt(last ? size : 0x10), p + 40);
  }
  shstrtab.copy(b, shstrOff);
  blob.copy(b, blobOff);
  dynstr.copy(b, dynstrOff);
  b.writeBigUInt64LE(0x0123456789abcdefn, dataOff);
  for (let i = 1; i < shape.symbols; i++) {
    const s = symOff + i * SYM;
    b.writeUInt32LE(1, s); // the one fingerprint name
    b[s + 4] = 0x11; // GLOBAL OBJECT
    b.writeUInt16LE(5, s + 6);
    b.writeBigUInt64LE(BigInt(BASE + dataOff), s + 8);
    b.writeBigUInt64LE(8n, s + 16);
  }

  const section = (
    i: number,
    h: { name: number; type: number; offset: number; size: number; link?: number; entsize?: number; info?: number },
  ) => {
    const s = shoff + i * SHDR;
    b.writeUInt32LE(h.name, s);
    b.writeUInt32LE(h.type, s + 4);
    b.writeBigUInt64LE(BigInt(h.offset), s + 24);
    b.writeBigUInt64LE(BigInt(h.size), s + 32);
    b.writeUInt32LE(h.link ?? 0, s + 40);
    b.writeUInt32LE(h.info ?? 0, s + 44);
    b.writeBigUInt64LE(BigInt(h.entsize ?? 0), s + 56);
  };
  section(0, {
    name: 0,
    type: 0,
    offset: 0,
    size: shape.sections >= 0xff00 ? shape.sections : 0,
    info: shape.segments >= 0xffff ? shape.segments : 0,
  });
  section(1, { name: 1, type: SHT_STRTAB, offset: shstrOff, size: shstrtab.length });
  section(2, { name: 11, type: SHT_PROGBITS, offset: blobOff, size: blob.length });
  section(3, { name: 25, type: SHT_STRTAB, offset: dynstrOff, size: dynstr.length });
  for (let i = 4; i < shape.sections; i++)
    section(i, { name: 33, type: SHT_DYNSYM, offset: symOff, size: shape.symbols * SYM, link: 3, entsize: SYM });
  return b;
}
