import { describe, expect, it } from 'vitest';
import { bundleFileName, bundleManifest, parseManifest, platformKey } from '../src/bundle/mattermost-bundle.js';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { TARGET_IDS } from '../src/contract/targets.js';

/** The manifest of a Mattermost-style bundle: what is checked, what is rewritten, what is kept. */
describe('Mattermost plugin.json in a bundle', () => {
  it('names each platform by the GOOS-GOARCH Mattermost looks up', () => {
    expect(TARGET_IDS.map(platformKey)).toEqual(['linux-amd64', 'linux-arm', 'linux-arm64', 'linux-386']);
  });

  it('fills in server.executables for the platforms built, drops a single server.executable, keeps every other field', () => {
    const manifest = parseManifest(
      JSON.stringify({
        id: 'com.example.hello',
        name: 'Hello',
        version: '0.1.0',
        min_server_version: '9.0.0',
        server: { executable: 'server/dist/plugin-linux-amd64', executables: { 'darwin-amd64': 'old' } },
        webapp: { bundle_path: 'webapp/dist/main.js' },
        settings_schema: { settings: [{ key: 'Greeting', type: 'text' }] },
      }),
    );
    const out = bundleManifest(manifest, [
      { target: 'linux-amd64', name: 'hello-linux-amd64' },
      { target: 'linux-arm-7', name: 'hello-linux-arm-7' },
    ]);
    expect(out).toEqual({
      id: 'com.example.hello',
      name: 'Hello',
      version: '0.1.0',
      min_server_version: '9.0.0',
      server: { executables: { 'linux-amd64': 'server/dist/hello-linux-amd64', 'linux-arm': 'server/dist/hello-linux-arm-7' } },
      webapp: { bundle_path: 'webapp/dist/main.js' },
      settings_schema: { settings: [{ key: 'Greeting', type: 'text' }] },
    });
    expect(bundleFileName(manifest)).toBe('com.example.hello-0.1.0.tar.gz');
    expect(bundleFileName(parseManifest('{"id":"com.example.hello","name":"Hello"}'))).toBe('com.example.hello.tar.gz');
  });

  it('takes the versions and fields Mattermost takes', () => {
    for (const version of ['0.1.0', '1.2.3-rc.1', '1.2.3+build.5', '10.20.30-alpha-1.beta'])
      expect(parseManifest(JSON.stringify({ id: 'com.example.x', name: 'X', version, min_server_version: '9.0.0' })).version).toBe(version);
  });

  it.each([
    ['not JSON', '{id: hello}', /not valid JSON/],
    ['no id', '{"name":"x"}', /id /],
    ['an id that is a path', '{"id":"../../etc"}', /id must be 3 to 190/],
    ['an id too short', '{"id":"ab"}', /id must be 3 to 190/],
    ['a version with a slash', '{"id":"com.example.x","name":"X","version":"1/2"}', /version must be a semantic version such as 1\.2\.0/],
    // What Mattermost's manifest check refuses (model.Manifest.IsValid): blang/semver versions, a name, http(s) URLs.
    ['a version with a v', '{"id":"com.example.x","name":"X","version":"v1.2.0"}', /version must be a semantic version/],
    ['a version of two parts', '{"id":"com.example.x","name":"X","version":"1.2"}', /version must be a semantic version/],
    ['a version with a leading zero', '{"id":"com.example.x","name":"X","version":"1.02.0"}', /version must be a semantic version/],
    [
      'a min_server_version that is not one',
      '{"id":"com.example.x","name":"X","min_server_version":"9"}',
      /min_server_version must be a semantic version/,
    ],
    ['no name', '{"id":"com.example.x"}', /name /],
    ['a blank name', '{"id":"com.example.x","name":"  "}', /name must name the plugin/],
    [
      'a homepage that is not http',
      '{"id":"com.example.x","name":"X","homepage_url":"javascript:alert(1)"}',
      /homepage_url must be an http\(s\) URL/,
    ],
    [
      'a webapp bundle outside webapp/dist',
      '{"id":"com.example.x","name":"X","webapp":{"bundle_path":"../main.js"}}',
      /bundle_path must be a file under webapp\/dist\//,
    ],
    [
      'a webapp bundle climbing out',
      '{"id":"com.example.x","name":"X","webapp":{"bundle_path":"webapp/dist/../../x.js"}}',
      /bundle_path must not climb out/,
    ],
    ['an array', '[]', /\(the manifest\)/],
  ])('refuses %s with 422 manifest_invalid and what to fix', (_what, text, message) => {
    let err: unknown;
    try {
      parseManifest(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlugforgeError);
    expect(err).toMatchObject({ code: 'manifest_invalid', status: 422 });
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toMatch(/Fix it and submit the build again|JSON/);
  });
});
