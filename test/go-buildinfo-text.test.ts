import { describe, expect, it } from 'vitest';
import { errorOf } from './support/errors.js';
import { parseGoVersionM, readGoBuildInfo } from '../src/verify/go-buildinfo.js';

/**
 * The Go build info readers on inputs made here, no Go program built: bytes that are not
 * ELF, and `go version -m` text to unquote. Against programs the builder images build:
 * test/go-buildinfo.test.ts.
 */

describe('readGoBuildInfo refuses what is not a Go host executable', () => {
  it('not ELF: a script, a PE header, nothing → host_binary_invalid (400)', () => {
    const pe = Buffer.alloc(512);
    pe.write('MZ', 0, 'latin1');
    for (const bytes of [Buffer.from('#!/bin/sh\nexec /usr/bin/host "$@"\n'), pe, Buffer.alloc(0)]) {
      const err = errorOf(() => readGoBuildInfo(bytes));
      expect(err.code).toBe('host_binary_invalid');
      expect(err.status).toBe(400);
      expect(err.message).toContain('go version -m');
    }
  });
});

describe('parseGoVersionM', () => {
  it('unquotes keys and values the way strconv.Unquote does', () => {
    const text = [
      'host: go1.22.12 X:loopvar',
      '\tbuild\t-gcflags="all=-N -l"',
      '\tbuild\t"odd key"=`raw \\n value`',
      '\tbuild\tESC="\\t\\x41\\101\\u00e9\\U0001F600\\\\\\""',
      '\tbuild\tEMPTY=',
      '',
    ].join('\n');
    expect(parseGoVersionM(text)).toStrictEqual({
      goVersion: '1.22.12',
      deps: [],
      settings: { '-gcflags': 'all=-N -l', 'odd key': 'raw \\n value', ESC: '\tAAé😀\\"', EMPTY: '' },
      trimpath: false,
      tags: [],
    });
  });
});
