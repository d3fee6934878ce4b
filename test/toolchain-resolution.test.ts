import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { compareGoVersions, parseGoVersion, requireGoVersion } from '../src/images/go-version.js';
import { resolveGoVersion, type ToolchainCatalog } from '../src/images/image-catalog.js';
import { parseImageTag } from '../src/images/image-tags.js';
import { checkImageBuildRequest } from '../src/images/image-builder.js';
import { chooseGoSource } from '../src/images/toolchain-module.js';
import { TARGET_IDS, type ImageTargetId } from '../src/contract/targets.js';
import { REPO_ROOT } from './support/env.js';

const run = promisify(execFile);
const CLI = path.join(REPO_ROOT, 'bin', 'plugforge.js');

function catalog(entries: [string, ImageTargetId[]][]): ToolchainCatalog {
  return {
    repo: 'plugforge/build',
    images: entries.flatMap(([go, targets]) =>
      targets.map((target) => ({ go, target, image: `plugforge/build:${go}-${target}`, id: 'x', size: 1, created: '' })),
    ),
  };
}

describe('Go versions and image tags', () => {
  it('parses minors and exact releases, with or without "go"', () => {
    expect(parseGoVersion('1.22')).toEqual({ major: 1, minor: 22 });
    expect(parseGoVersion('go1.22.12')).toEqual({ major: 1, minor: 22, patch: 12 });
    expect(parseGoVersion('1.22rc1')).toBeUndefined();
    expect(parseGoVersion('latest')).toBeUndefined();
  });

  it('orders 1.9 before 1.10 (numerically, not as text)', () => {
    const sorted = ['1.10.1', '1.9.3', '1.22.2', '1.22.12'].map((v) => parseGoVersion(v)!).sort(compareGoVersions);
    expect(sorted.map((v) => v.patch)).toEqual([3, 1, 2, 12]);
  });

  it('reads the gotify/build tag scheme and nothing else', () => {
    expect(parseImageTag('gotify/build:1.22.4-linux-arm-7')).toMatchObject({
      repo: 'gotify/build',
      goText: '1.22.4',
      target: 'linux-arm-7',
    });
    expect(parseImageTag('plugforge/build:1.22-linux-amd64')).toBeUndefined();
    expect(parseImageTag('plugforge/build:1.22.1-linux-mips')).toBeUndefined();
    expect(parseImageTag('plugforge/build:staging-1.22-linux-amd64')).toBeUndefined();
  });
});

describe('resolveGoVersion', () => {
  const cat = catalog([
    ['1.22.12', [...TARGET_IDS]],
    ['1.22.9', [...TARGET_IDS]],
    ['1.24.4', ['linux-amd64']],
  ]);

  it('resolves a minor to the newest patch with images for every target asked', () => {
    expect(resolveGoVersion(cat, '1.22', TARGET_IDS)).toBe('1.22.12');
    expect(resolveGoVersion(cat, '1.22.9', ['linux-386'])).toBe('1.22.9');
    expect(resolveGoVersion(cat, '1.24', ['linux-amd64'])).toBe('1.24.4');
  });

  it('refuses with 422, the available versions and the command that builds the missing ones', () => {
    const err = (() => {
      try {
        resolveGoVersion(cat, '1.24', TARGET_IDS);
      } catch (e) {
        return e as PlugforgeError;
      }
      throw new Error('expected an error');
    })();
    expect(err.code).toBe('go_version_unavailable');
    expect(err.status).toBe(422);
    expect(err.message).toContain('1.22.12, 1.22.9');
    expect(err.message).toContain('plugforge images build --go 1.24');
  });

  it('says so when a version is not a Go release at all', () => {
    expect(() => resolveGoVersion(cat, 'banana', TARGET_IDS)).toThrow(/not a Go release/);
  });
});

describe('checkImageBuildRequest', () => {
  it('names the supported Go minors for an unknown one', () => {
    expect(() => checkImageBuildRequest('1.20', ['linux-amd64'])).toThrow(
      'Debian packages Go 1.21, 1.22, 1.23, 1.24, 1.25, 1.26, 1.27 for these images, and the Go toolchain module starts at 1.21.0',
    );
  });
  it('names the supported targets for an unknown one', () => {
    expect(() => checkImageBuildRequest('1.22', ['linux-amd64', 'linux-mips'])).toThrow(
      'supported: linux-amd64, linux-arm-7, linux-arm64, linux-386',
    );
  });
  it('accepts a known minor and an exact release', () => {
    expect(() => checkImageBuildRequest('1.24', ['linux-386'])).not.toThrow();
    expect(() => checkImageBuildRequest('1.22.12', [...TARGET_IDS])).not.toThrow();
  });
});

describe('where an image takes Go from', () => {
  it("a minor or Debian's exact release from Debian; any other exact release from the toolchain module, given a proxy", () => {
    const via = (go: string, asked: 'auto' | 'debian' | 'go-release' = 'auto', p = 'https://proxy.golang.org') =>
      chooseGoSource(requireGoVersion(go), asked, p);
    expect(via('1.22')).toBe('debian');
    expect(via('1.22.12')).toBe('debian');
    expect(via('1.22.5')).toBe('go-release');
    expect(via('1.28.1')).toBe('go-release');
    expect(via('1.22.12', 'go-release')).toBe('go-release');
    expect(() => via('1.22', 'go-release')).toThrow(/name an exact release such as 1\.22\.0/);
    expect(() => via('1.28')).toThrow(/Go 1\.28 is not in Debian .*name an exact release such as 1\.28\.0/);
    expect(() => via('1.20.14', 'go-release')).toThrow(
      /Go 1\.20\.14 is not supported: Debian packages Go 1\.21, .*, 1\.27 .*starts at 1\.21\.0/,
    );
    expect(() => via('1.28', 'debian')).toThrow(/Go 1\.28 is not in Debian/);
  });
});

describe('plugforge images build', () => {
  // The compiled CLI refuses before it asks the Docker engine anything.
  it('refuses an unknown Go minor or target with one line listing what is supported (exit 2)', async () => {
    const bad = await run('node', [CLI, 'images', 'build', '--go', '1.20'], { cwd: REPO_ROOT }).catch((e) => e);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain(
      'Go 1.20 is not supported: Debian packages Go 1.21, 1.22, 1.23, 1.24, 1.25, 1.26, 1.27 for these images, and the Go toolchain module starts at 1.21.0',
    );
    const badTarget = await run('node', [CLI, 'images', 'build', '--targets', 'linux-mips'], { cwd: REPO_ROOT }).catch((e) => e);
    expect(badTarget.code).toBe(2);
    expect(badTarget.stderr).toContain('supported: linux-amd64, linux-arm-7, linux-arm64, linux-386');
  });
});
