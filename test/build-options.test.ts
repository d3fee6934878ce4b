import { describe, expect, it } from 'vitest';
import { mergeOptionSources, nameFromModule, parseBuildOptions } from '../src/api/build-options.js';
import { TARGET_IDS } from '../src/contract/targets.js';

const all = [...TARGET_IDS];

describe('build options', () => {
  it('defaults to all targets, plugin mode and the generic host', () => {
    expect(parseBuildOptions({}, all)).toEqual({ targets: all, mode: 'plugin', host: 'generic', verify: 'strict' });
  });

  it('keeps target-table order and drops duplicates', () => {
    expect(parseBuildOptions({ targets: 'linux-386, linux-amd64,linux-386' }, all).targets).toEqual(['linux-amd64', 'linux-386']);
  });

  it('refuses an unknown target with the valid ones listed', () => {
    expect(() => parseBuildOptions({ targets: 'linux-amd64,linux-mips' }, all)).toThrow(
      'Unknown target "linux-mips"; valid targets: linux-amd64, linux-arm-7, linux-arm64, linux-386, darwin-amd64, darwin-arm64, windows-amd64 (the last three with mode=exe), or mattermost (linux-amd64, linux-arm64, darwin-amd64, darwin-arm64, windows-amd64).',
    );
  });

  it("takes the starter template's five platforms as targets=mattermost, darwin and windows for executables only, cgo for linux executables only", () => {
    expect(parseBuildOptions({ targets: 'mattermost', mode: 'exe' }, all).targets).toEqual([
      'linux-amd64',
      'linux-arm64',
      'darwin-amd64',
      'darwin-arm64',
      'windows-amd64',
    ]);
    // Executables where nothing else can be built; Go plugins for darwin refused when asked for.
    expect(parseBuildOptions({ targets: 'mattermost' }, all).mode).toBe('exe');
    expect(parseBuildOptions({ targets: 'linux-amd64' }, all).mode).toBe('plugin');
    expect(() => parseBuildOptions({ targets: 'linux-amd64,darwin-arm64', mode: 'plugin' }, all)).toThrow(
      expect.objectContaining({ code: 'target_needs_exe', message: expect.stringContaining('darwin-arm64 is for executables only') }),
    );
    expect(parseBuildOptions({ targets: 'linux-amd64', mode: 'exe', cgo: 'true' }, all).cgo).toBe(true);
    expect(() => parseBuildOptions({ targets: 'mattermost', mode: 'exe', cgo: 'true' }, all)).toThrow(
      /cgo=true" builds linux executables only/,
    );
    expect(() => parseBuildOptions({ targets: 'linux-amd64', cgo: 'true' }, all)).toThrow(/Option "cgo" is for executables/);
  });

  it('refuses unknown options instead of ignoring them', () => {
    expect(() => parseBuildOptions({ target: 'linux-amd64' }, all)).toThrow(/Unknown option "target"/);
  });

  it('refuses a name that is not a plain file name', () => {
    for (const name of ['../x', 'a/b', '-rf', 'a b', '', 'x'.repeat(65)]) {
      expect(() => parseBuildOptions({ name }, all), name).toThrow(/Option "name"/);
    }
  });

  it('accepts go with or without the go prefix, and refuses other text', () => {
    expect(parseBuildOptions({ go: 'go1.22.12' }, all).go).toBe('1.22.12');
    expect(() => parseBuildOptions({ go: '1.22; rm -rf /' }, all)).toThrow(/Option "go"/);
  });

  it('refuses an option given twice', () => {
    expect(() => parseBuildOptions({ go: ['1.22', '1.23'] }, all)).toThrow(/more than once/);
  });

  it('refuses an option given both in the query and as a form field, whatever the values', () => {
    expect(() => mergeOptionSources({ go: '1.22', targets: 'linux-amd64' }, { go: '1.22' })).toThrow(
      expect.objectContaining({ code: 'option_given_twice', status: 400 }),
    );
    expect(() => mergeOptionSources({ verify: 'warn' }, { verify: 'strict', name: 'x' })).toThrow(
      /"verify" was given both in the query and as a form field/,
    );
    expect(mergeOptionSources({ go: '1.22' }, { targets: 'linux-386' })).toEqual({ go: '1.22', targets: 'linux-386' });
  });

  it('strips only when strip=true is asked for, and refuses other values', () => {
    expect(parseBuildOptions({ strip: 'true' }, all).strip).toBe(true);
    expect(parseBuildOptions({ strip: 'false' }, all)).not.toHaveProperty('strip');
    expect(() => parseBuildOptions({ strip: '-s' }, all)).toThrow(
      'Option "strip": Invalid option: expected one of "true"|"false" (true or false).',
    );
  });

  it('opts out of reuse only with reuse=off, and refuses other values', () => {
    expect(parseBuildOptions({ reuse: 'off' }, all).reuse).toBe('off');
    expect(parseBuildOptions({ reuse: 'on' }, all)).not.toHaveProperty('reuse');
    expect(parseBuildOptions({}, all)).not.toHaveProperty('reuse');
    expect(() => parseBuildOptions({ reuse: 'never' }, all)).toThrow(
      'Option "reuse": Invalid option: expected one of "on"|"off" (on or off).',
    );
  });

  it('takes the package to build as a directory inside the module, normalized, and refuses one outside it', () => {
    const pkg = (p: string) => parseBuildOptions({ package: p }, all).package;
    expect([pkg('./server'), pkg('server'), pkg('server/'), pkg('./cmd/plugin'), pkg('.'), pkg('./')]).toEqual([
      './server',
      './server',
      './server',
      './cmd/plugin',
      undefined,
      undefined,
    ]);
    for (const bad of ['../server', './server/../..', '/server', 'server//x', './.git', 'a b', 'x/'.repeat(17) + 'x', '']) {
      expect(() => pkg(bad), bad).toThrow(
        /Option "package": .* is not a package directory inside the module: name one relative to go\.mod, such as \.\/server/,
      );
    }
  });

  it('names the artifact after the module path', () => {
    expect(nameFromModule('github.com/gotify/plugin-template')).toBe('plugin-template');
    expect(nameFromModule('example.com/foo/v2')).toBe('foo');
    expect(nameFromModule('hello')).toBe('hello');
    expect(nameFromModule('example.com/_odd~name')).toBe('odd-name');
  });
});
