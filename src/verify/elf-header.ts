import type { Target } from '../contract/targets.js';

/** What the first bytes of an ELF file say (only the fields plugforge checks). */
export interface ElfHeader {
  elfClass: number;
  /** 1 little-endian, 2 big-endian. */
  dataEncoding: number;
  /** 2 executable, 3 shared object (plugins, PIE executables). */
  type: number;
  machine: number;
}

/** Bytes needed to read an ElfHeader. */
export const ELF_HEADER_BYTES = 20;

/** Parses the ELF identification and e_type/e_machine; undefined when not ELF. */
export function readElfHeader(bytes: Buffer): ElfHeader | undefined {
  if (bytes.length < ELF_HEADER_BYTES || bytes[0] !== 0x7f || bytes.toString('latin1', 1, 4) !== 'ELF') return undefined;
  const dataEncoding = bytes[5] ?? 0;
  const read16 = (offset: number) => (dataEncoding === 2 ? bytes.readUInt16BE(offset) : bytes.readUInt16LE(offset));
  return { elfClass: bytes[4] ?? 0, dataEncoding, type: read16(16), machine: read16(18) };
}

const CLASS_NAME: Record<number, string> = { 1: '32-bit', 2: '64-bit' };

/**
 * Checks an artifact's ELF header against its target. Returns undefined when it matches,
 * else a sentence saying what is wrong.
 */
export function checkElfForTarget(bytes: Buffer, target: Target, mode: 'plugin' | 'exe'): string | undefined {
  const h = readElfHeader(bytes);
  if (!h) return 'the artifact is not an ELF file';
  const problems: string[] = [];
  if (h.elfClass !== target.elfClass)
    problems.push(`ELF class ${CLASS_NAME[h.elfClass] ?? h.elfClass}, expected ${CLASS_NAME[target.elfClass]}`);
  if (h.dataEncoding !== 1) problems.push('big-endian, expected little-endian');
  if (h.machine !== target.elfMachine) problems.push(`e_machine ${h.machine}, expected ${target.elfMachine} (${target.elfMachineName})`);
  if (mode === 'plugin' && h.type !== 3) problems.push(`ELF type ${h.type}, expected 3 (shared object)`);
  if (mode === 'exe' && h.type !== 2 && h.type !== 3) problems.push(`ELF type ${h.type}, expected an executable`);
  return problems.length ? problems.join('; ') : undefined;
}
