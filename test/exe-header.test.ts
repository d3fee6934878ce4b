import { describe, expect, it } from 'vitest';
import { checkExeHeader, EXE_HEADER_BYTES, MACHO_CPU, PE_MACHINE } from '../src/verify/exe-header.js';

/** Executables for darwin and windows, checked by their headers (src/verify/exe-header.ts); the Docker suite checks real ones Go built. */
function machO(cpu: number, fileType = 2): Buffer {
  const b = Buffer.alloc(EXE_HEADER_BYTES);
  b.writeUInt32LE(0xfeedfacf, 0);
  b.writeUInt32LE(cpu, 4);
  b.writeUInt32LE(fileType, 12);
  return b;
}

function pe(machine: number, characteristics = 0x0022, magic = 0x20b): Buffer {
  const b = Buffer.alloc(EXE_HEADER_BYTES);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  b.writeUInt16LE(machine, 0x84);
  b.writeUInt16LE(characteristics, 0x80 + 22);
  b.writeUInt16LE(magic, 0x80 + 24);
  return b;
}

const darwinAmd64 = { format: 'macho', cpu: MACHO_CPU.amd64, name: 'x86-64' } as const;
const windowsAmd64 = { format: 'pe', machine: PE_MACHINE.amd64, name: 'x86-64' } as const;

describe('Mach-O and PE headers', () => {
  it('take an executable of the platform', () => {
    expect(checkExeHeader(machO(MACHO_CPU.amd64), darwinAmd64)).toBeUndefined();
    expect(checkExeHeader(machO(MACHO_CPU.arm64), { format: 'macho', cpu: MACHO_CPU.arm64, name: 'arm64' })).toBeUndefined();
    expect(checkExeHeader(pe(PE_MACHINE.amd64), windowsAmd64)).toBeUndefined();
  });

  it('say what is wrong: another CPU or machine, not an executable, another format, a PE header out of reach', () => {
    expect(checkExeHeader(machO(MACHO_CPU.arm64), darwinAmd64)).toBe('cputype 0x100000c, expected 0x1000007 (x86-64)');
    expect(checkExeHeader(machO(MACHO_CPU.amd64, 6), darwinAmd64)).toBe('file type 6, expected 2 (an executable)');
    expect(checkExeHeader(pe(PE_MACHINE.arm64), windowsAmd64)).toBe('machine 0xaa64, expected 0x8664 (x86-64)');
    expect(checkExeHeader(pe(PE_MACHINE.amd64, 0x2022), windowsAmd64)).toBe('not an executable image (a DLL or an object)');
    expect(checkExeHeader(pe(PE_MACHINE.amd64, 0x0022, 0x10b), windowsAmd64)).toBe('optional header magic 0x10b, expected 0x20b (PE32+)');
    expect(checkExeHeader(pe(PE_MACHINE.amd64), darwinAmd64)).toBe('the artifact is not a 64-bit Mach-O file');
    expect(checkExeHeader(machO(MACHO_CPU.amd64), windowsAmd64)).toBe('the artifact is not a PE file');
    const far = pe(PE_MACHINE.amd64);
    far.writeUInt32LE(0xfffffff0, 0x3c);
    expect(checkExeHeader(far, windowsAmd64)).toBe('the artifact is not a PE file');
  });
});
