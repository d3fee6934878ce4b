import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { API_SETTINGS, ConfigError, loadConfig, sliceOf, toolchainFetchOf, WORKER_SETTINGS, type Config } from '../src/config.js';

describe('configuration', () => {
  it('has working defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.imageRepo).toBe('plugforge/build');
    expect(c.defaultTargets).toEqual(['linux-amd64', 'linux-arm-7', 'linux-arm64', 'linux-386']);
  });

  it('stops with a message naming each wrong variable', () => {
    let err: unknown;
    try {
      loadConfig({ PLUGFORGE_PORT: 'eighty', PLUGFORGE_REDIS_URL: 'localhost:6379', PLUGFORGE_DEFAULT_TARGETS: 'linux-amd64,linux-sparc' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).toContain('PLUGFORGE_PORT="eighty"');
    expect(message).toContain('PLUGFORGE_REDIS_URL="localhost:6379": must be a redis:// or rediss:// URL');
    expect(message).toContain('PLUGFORGE_DEFAULT_TARGETS="linux-amd64,linux-sparc"');
  });

  it('refuses a user or password in PLUGFORGE_PUBLIC_URL (documents and provenance carry it), and names no password of a refused URL', () => {
    expect(() => loadConfig({ PLUGFORGE_PUBLIC_URL: 'https://ops:hunter2@builds.example.org' })).toThrow(
      /PLUGFORGE_PUBLIC_URL="https:\/\/\*\*\*@builds.example.org": must not carry a user or password/,
    );
    expect(loadConfig({ PLUGFORGE_PUBLIC_URL: 'https://builds.example.org/' }).publicUrl).toBe('https://builds.example.org');
    expect(() => loadConfig({ PLUGFORGE_GOPROXY: 'https://u:hunter2@proxy.example|direct' })).toThrow(/^(?![\s\S]*hunter2)/);
    // A proxy may need credentials: accepted, and redacted wherever it is printed (src/redact-url.ts).
    expect(loadConfig({ PLUGFORGE_GOPROXY: 'https://u:hunter2@proxy.example' }).goProxy.proxy).toBe('https://u:hunter2@proxy.example');
  });

  it('accepts gotify/build as the image repository', () => {
    expect(loadConfig({ PLUGFORGE_IMAGE_REPO: 'gotify/build' }).imageRepo).toBe('gotify/build');
    expect(() => loadConfig({ PLUGFORGE_IMAGE_REPO: 'Gotify Build' })).toThrow(/PLUGFORGE_IMAGE_REPO/);
  });

  it('caps queued-or-running and running builds per tenant separately, 0 meaning no limit', () => {
    expect(loadConfig({}).tenancy).toMatchObject({ maxActiveBuilds: 20, maxRunningBuilds: 0 });
    const c = loadConfig({ PLUGFORGE_TENANT_MAX_ACTIVE_BUILDS: '10', PLUGFORGE_TENANT_MAX_RUNNING_BUILDS: '2' });
    expect(c.tenancy).toMatchObject({ maxActiveBuilds: 10, maxRunningBuilds: 2 });
    expect(() => loadConfig({ PLUGFORGE_TENANT_MAX_RUNNING_BUILDS: '-1' })).toThrow(/PLUGFORGE_TENANT_MAX_RUNNING_BUILDS="-1"/);
  });
});

/** Two tenants' tokens in a file, as test/security-tenants.test.ts serves them. */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const suffix = randomBytes(3).toString('hex');
const ALICE = { tenant: `sec-alice-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const BOB = { tenant: `sec-bob-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
let config: Config;

beforeAll(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-tokens-'));
  const tokensFile = path.join(dir, 'tokens');
  await writeFile(
    tokensFile,
    `# tenant:sha256 of the token\n${ALICE.tenant}:${sha256(ALICE.token)}\n\n${BOB.tenant}:${sha256(BOB.token)}  # bob's CI\n`,
  );
  config = loadConfig({ PLUGFORGE_TOKENS_FILE: tokensFile, PLUGFORGE_TENANT_MAX_ACTIVE_BUILDS: '2' });
});

describe('slices of the configuration', () => {
  it('hands the API and the worker their own sections only, the signing key file and the proxy included where used', async () => {
    const keyFile = path.join(await mkdtemp(path.join(os.tmpdir(), 'plugforge-config-')), 'key.pem');
    await writeFile(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const config = loadConfig({
      PLUGFORGE_SIGNING_KEY: keyFile,
      PLUGFORGE_GOPROXY: 'file:///srv/goproxy',
      PLUGFORGE_DOCKER_HOST: 'unix:///run/other.sock',
    });
    const api = sliceOf(config, API_SETTINGS);
    expect(Object.keys(api).sort()).toEqual(API_SETTINGS.filter((k) => k !== 'publicUrl').sort()); // publicUrl is not set here
    // SigningKeys.open reads the file from the slice: losing it would sign with a generated key.
    expect(api.signingKeyFile).toBe(keyFile);
    for (const notTheApis of ['redisUrl', 'dockerHost', 'goProxy', 'modules', 'blobStore', 'port'])
      expect(api).not.toHaveProperty(notTheApis);
    const worker = sliceOf(config, WORKER_SETTINGS);
    expect(worker.goProxy.proxy).toBe('file:///srv/goproxy');
    for (const notTheWorkers of ['redisUrl', 'dockerHost', 'signingKeyFile', 'remoteWorkers', 'upload', 'blobStore'])
      expect(worker).not.toHaveProperty(notTheWorkers);
  });

  it('keeps the module proxy in one section, which the toolchain fetch reads too', () => {
    const config = loadConfig({
      PLUGFORGE_GOPROXY: 'https://proxy.example',
      PLUGFORGE_GOSUMDB: 'off',
      PLUGFORGE_TOOLCHAIN_SUMS: '/etc/plugforge/toolchain.sum',
    });
    expect(config.modules).not.toHaveProperty('proxy');
    expect(toolchainFetchOf(config)).toEqual({ ...config.goProxy, sumsFile: '/etc/plugforge/toolchain.sum' });
    expect(toolchainFetchOf(config).proxy).toBe('https://proxy.example');
  });
});

describe('sources of host releases', () => {
  it('takes JSON URL templates with {version}, allows their hosts by default, and names the variable when it is wrong', () => {
    const c = loadConfig({
      PLUGFORGE_HOST_SOURCES: JSON.stringify({
        gotify: {
          goMod: 'https://raw.example.org/gotify/server/v{version}/go.mod',
          goVersion: 'https://raw.example.org/gotify/server/v{version}/GO_VERSION',
        },
      }),
    });
    expect(c.hosts.sources.gotify?.goMod).toBe('https://raw.example.org/gotify/server/v{version}/go.mod');
    expect(c.hosts.fetchAllow).toEqual(['raw.example.org']);
    expect(() =>
      loadConfig({
        PLUGFORGE_HOST_SOURCES: '{"gotify": {"goMod": "https://x.example/go.mod", "goVersion": "https://x.example/{version}"}}',
      }),
    ).toThrow(/PLUGFORGE_HOST_SOURCES=.*must hold \{version\}/);
    expect(() => loadConfig({ PLUGFORGE_HOST_SOURCES: 'gotify=https://x.example' })).toThrow(/PLUGFORGE_HOST_SOURCES=.*must be JSON/);
  });
});

describe('configuration of tokens', () => {
  it('holds only hashes: a raw token, a bad tenant name or one hash for two tenants stops start-up', () => {
    expect(config.tenancy.tokens?.map((t) => t.tenant)).toEqual([ALICE.tenant, BOB.tenant]);
    expect(config.tenancy.tokens?.[0]?.sha256.toString('hex')).toBe(sha256(ALICE.token));
    const wrong = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(wrong({ PLUGFORGE_TOKENS: `alice:${ALICE.token}` })).toMatch(
      /PLUGFORGE_TOKENS \(entry 1\): must be tenant:sha256hex.*never the token itself/,
    );
    expect(wrong({ PLUGFORGE_TOKENS: `Alice:${sha256('x')}` })).toMatch(/tenant "Alice" must be/);
    expect(wrong({ PLUGFORGE_TOKENS: `a:${sha256('x')},b:${sha256('x')}` })).toMatch(/same token hash is configured for tenants a and b/);
    expect(wrong({ PLUGFORGE_TOKENS_FILE: '/nonexistent/tokens' })).toMatch(
      /PLUGFORGE_TOKENS_FILE="\/nonexistent\/tokens": cannot be read/,
    );
    expect(wrong({ PLUGFORGE_TOKENS: ' , ' })).toMatch(/no token configured/);
    expect(loadConfig({}).tenancy.tokens).toBeUndefined();
  });
});
