import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { DEBIAN_GO_RELEASES } from '../src/images/go-version.js';
import { checkImageBuildRequest } from '../src/images/image-builder.js';
import { raiseGoFloor, requireSafeGoRelease, TOOLCHAIN_FLOOR } from '../src/images/toolchain-floor.js';

/** The toolchain floor as plain data (docs/decisions.md, "The toolchain floor"). */
describe('the toolchain floor', () => {
  it("has one line per minor plugforge builds with, each naming an advisory, and Debian's release of each is at or above it", () => {
    expect(Object.keys(TOOLCHAIN_FLOOR)).toEqual(Object.keys(DEBIAN_GO_RELEASES));
    for (const [minor, line] of Object.entries(TOOLCHAIN_FLOOR)) {
      expect(line.release.startsWith(`${minor}.`)).toBe(true);
      expect(line.answers).toMatch(/CVE-2023-39323/);
      expect(() => requireSafeGoRelease(DEBIAN_GO_RELEASES[minor as keyof typeof DEBIAN_GO_RELEASES])).not.toThrow();
    }
    expect(TOOLCHAIN_FLOOR['1.21']!.release).toBe('1.21.2');
  });

  it('refuses an exact release below its line 422 go_release_unsafe; a bare minor and a newer minor pass', () => {
    for (const below of ['1.21.0', '1.21.1', 'go1.21.1']) {
      expect(() => requireSafeGoRelease(below)).toThrow(expect.objectContaining({ code: 'go_release_unsafe', status: 422 }));
    }
    expect(() => requireSafeGoRelease('1.20.14')).toThrow(/older than every release it builds with \(the oldest is 1\.21\.2/);
    for (const ok of ['1.21', '1.21.2', '1.22.0', '1.28.0']) expect(() => requireSafeGoRelease(ok)).not.toThrow();
  });

  it('is raised by the operator per minor, never lowered', () => {
    const { floor, problems } = raiseGoFloor('1.22.12, 1.23.8');
    expect(problems).toEqual([]);
    expect(() => requireSafeGoRelease('1.22.11', floor)).toThrow(
      /below the toolchain floor of Go 1\.22, 1\.22\.12, which answers the advisories this installation counts \(PLUGFORGE_GO_FLOOR\)/,
    );
    expect(() => requireSafeGoRelease('1.22.12', floor)).not.toThrow();
    expect(raiseGoFloor('1.21.1,1.19.13,1.22').problems).toEqual([
      "1.21.1 is below plugforge's floor for Go 1.21 (1.21.2, CVE-2023-39323): the floor can be raised, never lowered",
      '1.19.13 is older than every release plugforge builds with (the oldest is 1.21): the floor can be raised, never lowered',
      '1.22 is not an exact Go release such as 1.22.12',
    ]);
    expect(() => loadConfig({ PLUGFORGE_GO_FLOOR: '1.21.0' })).toThrow(
      /PLUGFORGE_GO_FLOOR="1\.21\.0": 1\.21\.0 is below plugforge's floor/,
    );
    expect(() => loadConfig({ PLUGFORGE_GO_FLOOR: 'latest' })).toThrow(/PLUGFORGE_GO_FLOOR="latest": must be a comma list/);
    expect(loadConfig({ PLUGFORGE_GO_FLOOR: '1.24.12' }).images.floor.lines['1.24']!.release).toBe('1.24.12');
    expect(() => loadConfig({ PLUGFORGE_GO_FLOOR: '1.22.12', PLUGFORGE_DEFAULT_GO: '1.22.5' })).toThrow(
      /PLUGFORGE_DEFAULT_GO="1\.22\.5": Go 1\.22\.5 is below the toolchain floor of Go 1\.22, 1\.22\.12/,
    );
  });

  it('refuses `plugforge images build --go` below it before any work', () => {
    expect(() => checkImageBuildRequest('1.21.1', ['linux-amd64'], 'go-release', 'https://proxy.golang.org')).toThrow(
      expect.objectContaining({ code: 'go_release_unsafe' }),
    );
    const raised = loadConfig({ PLUGFORGE_GO_FLOOR: '1.25.9' }).images.floor;
    expect(() => checkImageBuildRequest('1.25.8', ['linux-amd64'], 'go-release', 'https://proxy.golang.org', raised)).toThrow(/1\.25\.9/);
    expect(checkImageBuildRequest('1.25.9', ['linux-amd64'], 'go-release', 'https://proxy.golang.org', raised)).toBe('go-release');
  });
});
