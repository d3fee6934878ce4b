import { describe, expect, it } from 'vitest';
import { TARGETS } from '../src/contract/targets.js';
import { checkElfForTarget, readElfHeader } from '../src/verify/elf-header.js';
import { definedDynamicSymbols } from '../src/verify/package-fingerprints.js';
import { linkerPrefix, missingExports } from '../src/verify/plugin-exports.js';
import { hostileElf } from './support/hostile-elf.js';

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

describe('plugin exports (the dynamic symbol table)', () => {
  it('spells the plugin path as the Go linker does: dots after the last slash and odd bytes as %xx', () => {
    expect(linkerPrefix('example.com/gotify-hello')).toBe('example.com/gotify-hello');
    expect(linkerPrefix('example.com/gotify.hello')).toBe('example.com/gotify%2ehello');
    expect(linkerPrefix('gopkg.in/yaml.v3')).toBe('gopkg.in/yaml%2ev3');
    expect(linkerPrefix('example.com/a"b%c')).toBe('example.com/a%22b%25c');
  });

  it('finds a symbol only where it is defined as a function or object, by its exact name', () => {
    const file = hostileElf({ sections: 5, symbols: 3, segments: 1 });
    expect(
      definedDynamicSymbols(file, [
        'go:link.pkghashbytes.example.com/p',
        'go:link.pkghashbytes.example.com',
        'go:link.pkghashbytes.example.com/px',
      ]),
    ).toEqual(new Set(['go:link.pkghashbytes.example.com/p']));
    expect(missingExports(file, 'example.com/x', ['GetGotifyPluginInfo'])).toEqual(['GetGotifyPluginInfo']);
    // No section table, so no dynamic symbol table: nothing is exported.
    expect(missingExports(elf(2, 3, 62), 'example.com/x', ['GetGotifyPluginInfo', 'NewGotifyPluginInstance'])).toEqual([
      'GetGotifyPluginInfo',
      'NewGotifyPluginInstance',
    ]);
  });
});
