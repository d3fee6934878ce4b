import { describe, expect, it } from 'vitest';
import { isStdPackage, stdOnlyNote } from '../src/verify/package-fingerprints.js';

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
    expect(note).toContain('plugforge images build --go 1.22.12 --source go-release');
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
