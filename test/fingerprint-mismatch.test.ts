import { describe, expect, it } from 'vitest';
import { stdDiffering, stdOnly } from '../src/images/std-fingerprints.js';
import { isStdPackage, stdOnlyNote } from '../src/verify/package-fingerprints.js';
import { otherSource } from '../src/worker/std-source.js';

/** What a package_mismatch says when only the standard library differs (docs/decisions.md, "Host releases by name"). */
describe('a mismatch only in the standard library', () => {
  it('says the host was built by another build of its Go release, naming the packages, and says nothing when a module differs', () => {
    expect([
      isStdPackage('runtime'),
      isStdPackage('internal/abi'),
      isStdPackage('example.com/shared'),
      isStdPackage('golang.org/x/sys/unix'),
    ]).toEqual([true, true, false, false]);
    const note = stdOnlyNote(['runtime', 'internal/abi'], '1.22.12');
    expect(note).toContain('only standard-library packages differ (runtime, internal/abi)');
    expect(note).toContain('no image source plugforge can make');
    expect(note).toContain('plugforge images build --go 1.22.12 --source go-release --alongside');
    expect(stdOnlyNote(['runtime', 'example.com/shared'], '1.22.12')).toBeUndefined();
    expect(stdOnlyNote([], '1.22.12')).toBeUndefined();
    expect(
      stdOnlyNote(
        Array.from({ length: 10 }, (_, i) => `p${i}`),
        '1.22.12',
      ),
    ).toContain('p7, and 2 more');
  });
});

/** Which image source's standard library a host has (src/images/std-fingerprints.ts, src/worker/std-source.ts). */
describe("the standard library compared with an image source's", () => {
  it("counts the host's standard packages that differ from the table, not modules, the main package or packages the table lacks", () => {
    const host = { errors: 'aa', fmt: 'bb', runtime: 'cc', main: 'dd', 'example.com/shared': 'ee', 'net/http': 'ff' };
    const table = { errors: 'a0', fmt: 'bb', runtime: 'c0', 'example.com/shared': 'e0' };
    expect(stdDiffering(host, table)).toEqual(['errors', 'runtime']);
    expect(stdDiffering(host, { ...table, errors: 'aa', runtime: 'cc' })).toEqual([]);
    expect(Object.keys(stdOnly({ ...host, 'plugin/unnamed-1234': 'x', plugin: 'y' }))).toEqual([
      'errors',
      'fmt',
      'runtime',
      'net/http',
      'plugin',
    ]);
  });

  it("tries the Go toolchain module's release beside Debian's, and Debian's beside the module's only for the release Debian has", () => {
    expect(otherSource('1.22.12', 'debian')).toBe('go-release');
    expect(otherSource('1.22.12', 'unknown')).toBe('go-release');
    expect(otherSource('1.22.12', 'go-release')).toBe('debian');
    expect(otherSource('1.22.5', 'go-release')).toBeUndefined();
  });
});
