import { ElfFormatError, readAtAddress, readElfFile, sectionBytes, type ElfFile, type ElfSection } from './elf-sections.js';

/**
 * The link fingerprints of the Go packages in a binary, by import path (hex).
 *
 * A Go program that can load plugins (it links package plugin, dynamically, with cgo)
 * exports one `go:link.pkghashbytes.<import path>` object per package it links, holding
 * that package's fingerprint; a plugin carries the same objects for the packages it links.
 * At plugin.Open, the runtime compares, for every package of the plugin, the plugin's
 * fingerprint with the one the process resolves (the host's, where the host links the
 * package) and refuses the plugin on the first that differs: "plugin was built with a
 * different version of package X". So comparing these tables of a host binary and an
 * artifact tells, without running either, whether the host will accept the artifact's
 * packages. The objects are in the dynamic symbol table, which `strip -s` keeps.
 * See docs/architecture.md "Three levels of proof".
 */
export type PackageFingerprints = Record<string, string>;

const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const PREFIX = 'go:link.pkghashbytes.';
/** A plugin's package names by link order: the order plugin.Open checks them in (its static symbol table). */
const ORDER_PREFIX = 'go:link.pkgname.';
/**
 * Work caps for a crafted file (docs/decisions.md, "Host matching"): the symbols looked at
 * in one table (a Go host exports about 2000 a MB, some 250,000 at the 128 MiB a host
 * binary may have; one pass over the cap takes about 25 ms, names crafted to almost
 * match included), and the symbols of a prefix taken (programs link a few thousand
 * packages at most). Each taken symbol's bytes cost a walk over the segments, which
 * readElfFile caps.
 */
const MAX_SYMBOLS = 500_000;
const MAX_TAKEN = 5000;
const MAX_NAME_BYTES = 4096;
const MAX_FINGERPRINT_BYTES = 64;
const MAX_PACKAGE_NAME_BYTES = 4096;

/** The fingerprints a binary exports; empty when it exports none (it cannot load plugins, or is no plugin). */
export function readPackageFingerprints(bytes: Buffer, elf: ElfFile = readElfFile(bytes)): PackageFingerprints {
  const out: PackageFingerprints = {};
  for (const { name, data } of symbolsWithPrefix(bytes, elf, SHT_DYNSYM, PREFIX, MAX_FINGERPRINT_BYTES))
    out[name.slice(PREFIX.length)] = data.toString('hex');
  return out;
}

/**
 * A plugin's packages in link order (index by import path), from the `go:link.pkgname.<i>`
 * strings of its static symbol table: the runtime checks packages in this order, so the
 * first differing one in it is the one Go's refusal names. Empty for a stripped file.
 */
export function readPackageOrder(bytes: Buffer, elf: ElfFile = readElfFile(bytes)): Map<string, number> {
  const order = new Map<string, number>();
  for (const { name, data } of symbolsWithPrefix(bytes, elf, SHT_SYMTAB, ORDER_PREFIX, MAX_PACKAGE_NAME_BYTES)) {
    const index = Number(name.slice(ORDER_PREFIX.length));
    if (Number.isSafeInteger(index)) order.set(data.toString('utf8'), index);
  }
  return order;
}

/** The one symbol table of a type: its entries and their string table, checked against the caps. */
interface SymbolTable {
  strings: ElfSection;
  names: Buffer;
  count: number;
  /** st_name of entry i. */
  nameOffset(i: number): number;
  value(i: number): number;
  size(i: number): number;
  /** STT_* of entry i (the low 4 bits of st_info). */
  kind(i: number): number;
  /** st_shndx of entry i: 0 (SHN_UNDEF) for a symbol the file uses but does not define. */
  sectionIndex(i: number): number;
}

/**
 * The symbol table of the given type, or undefined when the file has none. The gABI allows
 * one of each type; a file with more is refused rather than read again and again.
 */
function symbolTable(bytes: Buffer, elf: ElfFile, tableType: number): SymbolTable | undefined {
  const tables = elf.sections.filter((s) => s.type === tableType);
  if (tables.length > 1)
    throw new ElfFormatError(`it has ${tables.length} symbol tables of type ${tableType}; an ELF file has at most one`);
  const [table] = tables;
  if (!table) return undefined;
  const strings = elf.sections[table.link];
  if (!strings) throw new ElfFormatError(`the symbol table ${table.name} names string table ${table.link}, which does not exist`);
  const names = sectionBytes(bytes, strings);
  const symbols = sectionBytes(bytes, table);
  const entry = elf.is64 ? 24 : 16;
  const count = Math.floor(symbols.length / entry);
  if (count > MAX_SYMBOLS) throw new ElfFormatError(`${count} symbols is more than plugforge reads (${MAX_SYMBOLS})`);
  const le = elf.littleEndian;
  const u32 = (at: number) => (le ? symbols.readUInt32LE(at) : symbols.readUInt32BE(at));
  const u16 = (at: number) => (le ? symbols.readUInt16LE(at) : symbols.readUInt16BE(at));
  const word = (at: number) => (elf.is64 ? Number(le ? symbols.readBigUInt64LE(at) : symbols.readBigUInt64BE(at)) : u32(at));
  // Elf64_Sym: name, info, other, shndx, value, size; Elf32_Sym: name, value, size, info, other, shndx.
  return elf.is64
    ? {
        strings,
        names,
        count,
        nameOffset: (i) => u32(i * 24),
        kind: (i) => (symbols[i * 24 + 4] ?? 0) & 0xf,
        sectionIndex: (i) => u16(i * 24 + 6),
        value: (i) => word(i * 24 + 8),
        size: (i) => word(i * 24 + 16),
      }
    : {
        strings,
        names,
        count,
        nameOffset: (i) => u32(i * 16),
        value: (i) => u32(i * 16 + 4),
        size: (i) => u32(i * 16 + 8),
        kind: (i) => (symbols[i * 16 + 12] ?? 0) & 0xf,
        sectionIndex: (i) => u16(i * 16 + 14),
      };
}

/** Every symbol of the given table type whose name starts with `prefix`, with its bytes. */
function symbolsWithPrefix(
  bytes: Buffer,
  elf: ElfFile,
  tableType: number,
  prefix: string,
  maxSize: number,
): { name: string; data: Buffer }[] {
  const table = symbolTable(bytes, elf, tableType);
  if (!table) return [];
  const wanted = Buffer.from(prefix, 'latin1');
  const out: { name: string; data: Buffer }[] = [];
  for (let i = 1; i < table.count; i++) {
    const nameOffset = table.nameOffset(i);
    if (!startsWith(table.names, nameOffset, wanted)) continue;
    if (out.length === MAX_TAKEN)
      throw new ElfFormatError(`more than ${MAX_TAKEN} symbols are named ${prefix}*; real programs link a few thousand packages`);
    const name = cString(table.names, nameOffset, table.strings);
    const value = table.value(i);
    const length = table.size(i);
    if (length === 0 || length > maxSize) throw new ElfFormatError(`${name} is ${length} bytes long, more than such a symbol holds`);
    const data = readAtAddress(bytes, elf, value, length);
    if (!data || data.length !== length)
      throw new ElfFormatError(`${name} points at address 0x${value.toString(16)}, which the file does not hold`);
    out.push({ name, data });
  }
  return out;
}

const STT_OBJECT = 1;
const STT_FUNC = 2;

/**
 * Which of `names` the file defines as a function or data object in its dynamic symbol
 * table (what another program can resolve in it), each looked for by its exact linker name.
 */
export function definedDynamicSymbols(bytes: Buffer, names: readonly string[], elf: ElfFile = readElfFile(bytes)): Set<string> {
  const found = new Set<string>();
  const table = symbolTable(bytes, elf, SHT_DYNSYM);
  if (!table) return found;
  const wanted = names.map((name) => ({ name, bytes: Buffer.from(`${name}\0`, 'utf8') }));
  for (let i = 1; i < table.count && found.size < wanted.length; i++) {
    const kind = table.kind(i);
    if ((kind !== STT_FUNC && kind !== STT_OBJECT) || table.sectionIndex(i) === 0) continue;
    const nameOffset = table.nameOffset(i);
    for (const w of wanted) if (startsWith(table.names, nameOffset, w.bytes)) found.add(w.name);
  }
  return found;
}

/** Compared in place: a million symbols must not make a million strings. */
function startsWith(table: Buffer, offset: number, prefix: Buffer): boolean {
  if (offset + prefix.length > table.length) return false;
  for (let i = 0; i < prefix.length; i++) if (table[offset + i] !== prefix[i]) return false;
  return true;
}

/** A name of a taken symbol: a package path, so its end is looked for in the next MAX_NAME_BYTES only. */
function cString(table: Buffer, offset: number, section: ElfSection): string {
  const end = table.subarray(offset, offset + MAX_NAME_BYTES).indexOf(0);
  if (end < 0)
    throw new ElfFormatError(
      `a symbol name in ${section.name || 'the dynamic string table'} is not NUL-terminated within ${MAX_NAME_BYTES} bytes`,
    );
  return table.toString('utf8', offset, offset + end);
}

/** What comparing a plugin's fingerprints with a host's found. */
export interface FingerprintComparison {
  /** Packages both link. */
  compared: number;
  /**
   * Those whose fingerprints differ, in the plugin's link order where it is known (the
   * order the runtime checks them in, so the first is the one Go's refusal names), else by
   * name: each one makes plugin.Open refuse the plugin.
   */
  differing: string[];
}

/** Compares every package the plugin and the host both link. */
export function compareFingerprints(
  host: PackageFingerprints,
  plugin: PackageFingerprints,
  order: ReadonlyMap<string, number> = new Map(),
): FingerprintComparison {
  let compared = 0;
  const differing: string[] = [];
  for (const [pkg, hash] of Object.entries(plugin)) {
    const theirs = host[pkg];
    if (theirs === undefined) continue;
    compared++;
    if (theirs !== hash) differing.push(pkg);
  }
  const rank = (pkg: string) => order.get(pkg) ?? Number.MAX_SAFE_INTEGER;
  return { compared, differing: differing.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)) };
}

/** A standard-library import path: its first element has no dot (module paths' first element is a domain). */
export function isStdPackage(pkg: string): boolean {
  return !pkg.split('/')[0]!.includes('.');
}

/**
 * What differing packages say of the host's toolchain: when every one is in the standard
 * library (the modules all match, and host matching gave the host's settings), the host was
 * built by another build of its Go release than any image source plugforge compared, say a
 * distribution's patched Go (docs/images.md, "Both sources of one release"). Undefined otherwise.
 */
export function stdOnlyNote(differing: readonly string[], go: string): string | undefined {
  if (!differing.length || !differing.every(isStdPackage)) return undefined;
  const named = differing.slice(0, 8).join(', ') + (differing.length > 8 ? `, and ${differing.length - 8} more` : '');
  return `only standard-library packages differ (${named}): the host was built by another build of Go ${go} than this builder image's, and no image source plugforge can make (Debian's, the Go toolchain module's) had the host's (the target's goSource says what was compared, docs/images.md "Both sources of one release"); build the host with the official Go ${go} or Debian's, or build images of the Go it was built with (plugforge images build --go ${go} --source go-release --alongside, when the module proxy was unreachable)`;
}
