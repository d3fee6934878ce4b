import { describe, expect, it } from 'vitest';
import type { BuildState, ReleaseCheck, TargetState } from '../src/builds/build-document.js';
import { matrixArtifactName, matrixCells, matrixStatus, sameBytesKey } from '../src/builds/host-matrix.js';
import { sampleRecord } from './support/fixtures.js';

/**
 * A matrix's cells from its builds' states (docs/hosts.md, "A matrix"): each release's own
 * fingerprint check decides its cell; a release whose executable links other content for a
 * package fails package_mismatch naming the module; the matrix's status from its cells.
 */
const matrix = sampleRecord({
  id: 'mx',
  name: 'hello',
  targetIds: ['linux-amd64'],
  matrix: {
    hosts: ['h@1.0.0', 'h@1.1.0', 'h@1.1.1'],
    builds: [
      { build: 'b1', hosts: ['h@1.0.0'] },
      { build: 'b2', hosts: ['h@1.1.0', 'h@1.1.1'] },
    ],
  },
});

const check = (release: string, differing: string[] = []): ReleaseCheck => ({
  release,
  hostBinary: 'a'.repeat(64),
  go: '1.22.12',
  compared: 40,
  differing,
  status: differing.length ? 'failed' : 'passed',
  message: differing.length
    ? `plugin was built with a different version of package ${differing[0]} (against host release ${release}'s executable)`
    : `all 40 packages shared with host release ${release}'s executable have the same fingerprints`,
});

function group(id: string, target: TargetState): BuildState {
  return {
    record: sampleRecord({
      id,
      targetIds: ['linux-amd64'],
      hostMatch: {
        from: 'binary',
        trimpath: false,
        tags: [],
        modules: [
          { path: 'example.com/shared', version: 'v1.1.0' },
          { path: 'example.com/shared/sub', version: 'v0.1.0' },
        ],
        aligned: [],
        notes: [],
      },
    }),
    targets: { 'linux-amd64': target },
    status: target.status,
  };
}

const artifact = { name: 'hello-linux-amd64.so', size: 10, sha256: 'c'.repeat(64) };
const succeeded = (releases: ReleaseCheck[]): TargetState => ({
  status: 'succeeded',
  image: 'i',
  artifact,
  finishedAt: '2026-01-01T00:01:00.000Z',
  verify: { status: 'passed', method: 'fingerprints', message: `ELF; ${releases[0]!.message}; loaded`, releases },
});

describe('matrix cells', () => {
  it("judges each release of a group by its own executable's fingerprints, naming the module of a package that differs", () => {
    const builds = new Map<string, BuildState | undefined>([
      ['b1', group('b1', { status: 'succeeded', image: 'i', artifact, verify: { status: 'passed', message: 'loaded', method: 'probe' } })],
      ['b2', group('b2', succeeded([check('h@1.1.0'), check('h@1.1.1', ['example.com/shared'])]))],
    ]);
    const cells = matrixCells(matrix, builds);
    expect(cells.map((c) => [c.host, c.status, c.build, c.reusedFrom ?? null, c.artifact?.name ?? null, c.error?.code ?? null])).toEqual([
      ['h@1.0.0', 'succeeded', 'b1', null, 'hello-linux-amd64-for-h-v1.0.0.so', null],
      ['h@1.1.0', 'succeeded', 'b2', null, 'hello-linux-amd64-for-h-v1.1.0.so', null],
      ['h@1.1.1', 'failed', 'b2', 'h@1.1.0', null, 'package_mismatch'],
    ]);
    expect(cells[2]!.error!.message).toContain('module example.com/shared v1.1.0');
    expect(cells[2]!.error!.message).not.toContain('example.com/shared/sub');
    expect(cells[2]!.verify).toMatchObject({
      status: 'failed',
      method: 'fingerprints',
      fingerprints: { differing: ['example.com/shared'] },
    });
    // The passing release's cell names its own check, not another's.
    expect(cells[1]!.verify!.message).toContain('h@1.1.0');
    expect(matrixStatus(cells, false, builds)).toBe('failed');
  });

  it('offers a mismatched cell with verify=warn, its failed verification kept', () => {
    const warn = { ...matrix, verifyMode: 'warn' as const };
    const builds = new Map<string, BuildState | undefined>([
      ['b1', group('b1', succeeded([check('h@1.0.0')]))],
      ['b2', group('b2', succeeded([check('h@1.1.0'), check('h@1.1.1', ['example.com/shared'])]))],
    ]);
    const cell = matrixCells(warn, builds)[2]!;
    expect([cell.status, cell.verify?.status, cell.artifact?.name]).toEqual(['succeeded', 'failed', 'hello-linux-amd64-for-h-v1.1.1.so']);
  });

  it('shows unfinished and swept builds, and derives the status: running, then failed when a build is gone', () => {
    const running = new Map<string, BuildState | undefined>([
      ['b1', group('b1', { status: 'running', image: 'i' })],
      ['b2', group('b2', { status: 'queued', image: 'i' })],
    ]);
    expect(matrixStatus(matrixCells(matrix, running), false, running)).toBe('running');
    expect(matrixStatus(matrixCells(matrix, running), true, running)).toBe('canceled');
    const gone = new Map<string, BuildState | undefined>([
      ['b1', undefined],
      ['b2', group('b2', succeeded([check('h@1.1.0'), check('h@1.1.1')]))],
    ]);
    const cells = matrixCells(matrix, gone);
    expect(cells[0]!.error?.code).toBe('matrix_build_gone');
    expect(cells.slice(1).map((c) => c.status)).toEqual(['succeeded', 'succeeded']);
    expect(matrixStatus(cells, false, gone)).toBe('failed');
  });
});

describe('what a matrix shares', () => {
  it('builds releases once when the bytes they need are the same, apart when the Go release, aligned go.mod or module paths differ', () => {
    const base = group('x', { status: 'queued', image: 'i' }).record;
    const key = sameBytesKey(base);
    expect(sameBytesKey({ ...base, id: 'y', hostMatch: { ...base.hostMatch!, release: 'h@2', notes: ['n'] } })).toBe(key);
    expect(sameBytesKey({ ...base, go: '1.22.11' })).not.toBe(key);
    expect(sameBytesKey({ ...base, hostMatch: { ...base.hostMatch!, goMod: 'module x\n' } })).not.toBe(key);
    expect(
      sameBytesKey({ ...base, hostMatch: { ...base.hostMatch!, modules: [{ path: 'example.com/other', version: 'v1.0.0' }] } }),
    ).not.toBe(key);
    expect(sameBytesKey({ ...base, hostMatch: { ...base.hostMatch!, trimpath: true } })).not.toBe(key);
  });

  it("names artifacts as gotify's template does", () => {
    expect(matrixArtifactName('hello', 'linux-arm-7', 'gotify@2.4.0', 'plugin')).toBe('hello-linux-arm-7-for-gotify-v2.4.0.so');
    expect(matrixArtifactName('tool', 'linux-386', 'flow@1.0.0-rc.1', 'exe')).toBe('tool-linux-386-for-flow-v1.0.0-rc.1');
  });
});
