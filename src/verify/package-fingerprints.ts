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
/** Real programs link a few thousand packages at most; a crafted file gets no further. */
const MAX_SYMBOLS = 2_000_000;
const MAX_FINGERPRINT_BYTES = 64;
const MAX_PACKAGE_NAME_BYTES = 4096;

/** The fingerprints a binary exports; empty when it exports none (it cannot load plugins, or is no plugin). */
export function readPackageFingerprints(bytes: Buffer, elf: ElfFile = readElfFile(bytes)): PackageFingerprints {
  const out: PackageFingerprints = {};
  for (const { name, data } of symbolsWithPrefix(bytes, elf, SHT_DYNSYM, PREFIX, MAX_FINGERPRINT_BYTES)) out[name.slice(PREFIX.length)] = data.toString('hex');
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

/** Every data symbol of the given table type whose name starts with `prefix`, with its bytes. */
function symbolsWithPrefix(bytes: Buffer, elf: ElfFile, tableType: number, prefix: string, maxSize: number): { name: string; data: Buffer }[] {
  const out: { name: string; data: Buffer }[] = [];
  for (const table of elf.sections.filter((s) => s.type === tableType)) {
    const strings = elf.sections[table.link];
    if (!strings) throw new ElfFormatError(`the symbol table ${table.name} names string table ${table.link}, which does not exist`);
    const names = sectionBytes(bytes, strings);
    const symbols = sectionBytes(bytes, table);
    const size = elf.is64 ? 24 : 16;
    const count = Math.floor(symbols.length / size);
    if (count > MAX_SYMBOLS) throw new ElfFormatError(`${count} symbols is more than plugforge reads (${MAX_SYMBOLS})`);
    const u32 = (at: number) => (elf.littleEndian ? symbols.readUInt32LE(at) : symbols.readUInt32BE(at));
    const word = (at: number) => (elf.is64 ? Number(elf.littleEndian ? symbols.readBigUInt64LE(at) : symbols.readBigUInt64BE(at)) : u32(at));
    for (let i = 1; i < count; i++) {
      const at = i * size;
      const nameOffset = u32(at);
      if (!startsWith(names, nameOffset, prefix)) continue;
      const name = cString(names, nameOffset, strings);
      const value = word(at + (elf.is64 ? 8 : 4));
      const length = word(at + (elf.is64 ? 16 : 8));
      if (length === 0 || length > maxSize) throw new ElfFormatError(`${name} is ${length} bytes long, more than such a symbol holds`);
      const data = readAtAddress(bytes, elf, value, length);
      if (!data || data.length !== length) throw new ElfFormatError(`${name} points at address 0x${value.toString(16)}, which the file does not hold`);
      out.push({ name, data });
    }
  }
  return out;
}

function startsWith(table: Buffer, offset: number, prefix: string): boolean {
  if (offset + prefix.length > table.length) return false;
  return table.toString('latin1', offset, offset + prefix.length) === prefix;
}

function cString(table: Buffer, offset: number, section: ElfSection): string {
  const end = table.indexOf(0, offset);
  if (end < 0) throw new ElfFormatError(`a symbol name in ${section.name || 'the dynamic string table'} is not NUL-terminated`);
  return table.toString('utf8', offset, end);
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
export function compareFingerprints(host: PackageFingerprints, plugin: PackageFingerprints, order: ReadonlyMap<string, number> = new Map()): FingerprintComparison {
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
