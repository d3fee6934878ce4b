/**
 * The headers of executables for the platforms plugforge builds without an ELF loader to
 * run them: Mach-O for darwin, PE for windows (docs/plugins.md, "Executable plugins").
 * Only the fields that say which platform the file is for are read, from its first bytes.
 */

/** Bytes an artifact's head must have for any of these checks (the PE header sits behind the DOS stub). */
export const EXE_HEADER_BYTES = 512;

/** Mach-O 64-bit, little-endian (MH_MAGIC_64 as it is laid out on disk). */
const MH_MAGIC_64 = 0xfeedfacf;
const MH_EXECUTE = 2;
/** cputype values of <mach/machine.h>: CPU_ARCH_ABI64 | CPU_TYPE_X86, CPU_ARCH_ABI64 | CPU_TYPE_ARM. */
export const MACHO_CPU = { amd64: 0x01000007, arm64: 0x0100000c } as const;

/** IMAGE_FILE_MACHINE_* of the PE/COFF specification. */
export const PE_MACHINE = { amd64: 0x8664, arm64: 0xaa64, '386': 0x14c } as const;
const IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002;
const IMAGE_FILE_DLL = 0x2000;
const PE32_PLUS = 0x20b;

/** What an executable's header must say for a platform. */
export type ExeFormat = { format: 'macho'; cpu: number; name: string } | { format: 'pe'; machine: number; name: string };

/** A Mach-O header's fields plugforge checks; undefined when not 64-bit little-endian Mach-O. */
export function readMachOHeader(bytes: Buffer): { cpu: number; fileType: number } | undefined {
  if (bytes.length < 16 || bytes.readUInt32LE(0) !== MH_MAGIC_64) return undefined;
  return { cpu: bytes.readUInt32LE(4), fileType: bytes.readUInt32LE(12) };
}

/** A PE header's fields plugforge checks; undefined when there is no PE header within the first EXE_HEADER_BYTES. */
export function readPeHeader(bytes: Buffer): { machine: number; characteristics: number; optionalMagic: number } | undefined {
  if (bytes.length < 64 || bytes.toString('latin1', 0, 2) !== 'MZ') return undefined;
  const pe = bytes.readUInt32LE(0x3c);
  if (pe + 26 > bytes.length || bytes.toString('latin1', pe, pe + 4) !== 'PE\0\0') return undefined;
  return { machine: bytes.readUInt16LE(pe + 4), characteristics: bytes.readUInt16LE(pe + 22), optionalMagic: bytes.readUInt16LE(pe + 24) };
}

/**
 * Checks an executable's header against its platform. Undefined when it matches, else a
 * sentence saying what is wrong (what verification reports).
 */
export function checkExeHeader(bytes: Buffer, want: ExeFormat): string | undefined {
  if (want.format === 'macho') {
    const h = readMachOHeader(bytes);
    if (!h) return 'the artifact is not a 64-bit Mach-O file';
    const problems: string[] = [];
    if (h.cpu !== want.cpu) problems.push(`cputype 0x${h.cpu.toString(16)}, expected 0x${want.cpu.toString(16)} (${want.name})`);
    if (h.fileType !== MH_EXECUTE) problems.push(`file type ${h.fileType}, expected ${MH_EXECUTE} (an executable)`);
    return problems.length ? problems.join('; ') : undefined;
  }
  const h = readPeHeader(bytes);
  if (!h) return 'the artifact is not a PE file';
  const problems: string[] = [];
  if (h.machine !== want.machine)
    problems.push(`machine 0x${h.machine.toString(16)}, expected 0x${want.machine.toString(16)} (${want.name})`);
  if (!(h.characteristics & IMAGE_FILE_EXECUTABLE_IMAGE) || h.characteristics & IMAGE_FILE_DLL)
    problems.push('not an executable image (a DLL or an object)');
  if (h.optionalMagic !== PE32_PLUS) problems.push(`optional header magic 0x${h.optionalMagic.toString(16)}, expected 0x20b (PE32+)`);
  return problems.length ? problems.join('; ') : undefined;
}
