import { describe, expect, it } from 'vitest';
import { TARGETS } from '../src/targets.js';
import { checkElfForTarget, readElfHeader } from '../src/verify/elf-header.js';

/** A minimal ELF header: class, little-endian, e_type, e_machine. */
function elf(elfClass: number, type: number, machine: number, bigEndian = false): Buffer {
  const b = Buffer.alloc(64);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = elfClass;
  b[5] = bigEndian ? 2 : 1;
  b[6] = 1;
  if (bigEndian) {
    b.writeUInt16BE(type, 16);
    b.writeUInt16BE(machine, 18);
  } else {
    b.writeUInt16LE(type, 16);
    b.writeUInt16LE(machine, 18);
  }
  return b;
}

describe('ELF header check', () => {
  it('reads class, type and machine', () => {
    expect(readElfHeader(elf(2, 3, 62))).toEqual({ elfClass: 2, dataEncoding: 1, type: 3, machine: 62 });
    expect(readElfHeader(Buffer.from('#!/bin/sh\necho hi\n...........'))).toBeUndefined();
  });

  it('accepts each target its own shared object', () => {
    expect(checkElfForTarget(elf(2, 3, 62), TARGETS['linux-amd64'], 'plugin')).toBeUndefined();
    expect(checkElfForTarget(elf(1, 3, 40), TARGETS['linux-arm-7'], 'plugin')).toBeUndefined();
    expect(checkElfForTarget(elf(2, 3, 183), TARGETS['linux-arm64'], 'plugin')).toBeUndefined();
    expect(checkElfForTarget(elf(1, 3, 3), TARGETS['linux-386'], 'plugin')).toBeUndefined();
  });

  it('names what is wrong: machine, class, type, byte order', () => {
    expect(checkElfForTarget(elf(2, 3, 62), TARGETS['linux-arm64'], 'plugin')).toBe('e_machine 62, expected 183 (AArch64)');
    expect(checkElfForTarget(elf(2, 3, 40), TARGETS['linux-arm-7'], 'plugin')).toBe('ELF class 64-bit, expected 32-bit');
    expect(checkElfForTarget(elf(2, 2, 62), TARGETS['linux-amd64'], 'plugin')).toBe('ELF type 2, expected 3 (shared object)');
    expect(checkElfForTarget(elf(2, 3, 62, true), TARGETS['linux-amd64'], 'plugin')).toBe('big-endian, expected little-endian');
    expect(checkElfForTarget(Buffer.alloc(64), TARGETS['linux-amd64'], 'exe')).toBe('the artifact is not an ELF file');
  });

  it('accepts executables as ET_EXEC or PIE', () => {
    expect(checkElfForTarget(elf(2, 2, 62), TARGETS['linux-amd64'], 'exe')).toBeUndefined();
    expect(checkElfForTarget(elf(2, 3, 62), TARGETS['linux-amd64'], 'exe')).toBeUndefined();
  });
});
