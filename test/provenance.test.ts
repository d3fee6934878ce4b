import { execFile, spawn } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { TARGET_IDS } from '../src/contract/targets.js';
import { requireCompiledCli, runCli } from './support/cli.js';
import { REPO_ROOT, requireDocker, requireImages, requireRedis, testConfig, TEST_REDIS_URL } from './support/env.js';
import { ginVendorTree } from './support/gin-vendor.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';

/**
 * Provenance a downloader can check: examples/hello built once for four targets by the CLI
 * (which keeps provenance, signatures and SBOMs beside the artifacts), checked by Debian's
 * cosign and by `plugforge verify`, a changed byte failing both; the SBOM of a gin plugin
 * built from vendor/; the signing key shared, generated once, and rotated.
 */
const execFileP = promisify(execFile);
const COSIGN = process.env.PLUGFORGE_COSIGN ?? 'cosign';
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let redis: Redis;
let docker: Docker;
let go: string;
let service: RunningService;
let api: ApiClient;
let env: Record<string, string>;
let dataDir: string;
let hello: { id: string; out: string; doc: any; pub: string };

async function requireCosign(): Promise<void> {
  try {
    await execFileP(COSIGN, ['version']);
  } catch (err) {
    throw new Error(
      `This test checks plugforge's signatures with cosign, and ${COSIGN} cannot be run (${(err as Error).message}). ` +
        "Run ./scripts/test (setup_cosign installs Debian's cosign, from trixie on bookworm), or: apt-get install cosign (trixie and later), or set PLUGFORGE_COSIGN.",
      { cause: err },
    );
  }
}

/** cosign's exit code and output; offline: no transparency log, the key given. */
async function cosign(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(COSIGN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

const verifyBlob = (pub: string, file: string) =>
  cosign(['verify-blob', '--key', pub, '--signature', `${file}.sig`, '--insecure-ignore-tlog', file]);
const verifyAttestation = (pub: string, file: string, envelope: string) =>
  cosign(['verify-blob-attestation', '--key', pub, '--type', 'slsaprovenance1', '--signature', envelope, '--insecure-ignore-tlog', file]);

beforeAll(async () => {
  requireCompiledCli();
  await requireCosign();
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  const config = await testConfig();
  dataDir = config.dataDir;
  service = await startService('serve', config);
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
  env = { PLUGFORGE_URL: api.base };

  // The one four-target build of this file: through the CLI, which keeps the evidence in --out.
  const out = await mkdtemp(path.join(os.tmpdir(), 'plugforge-prov-'));
  const r = await runCli(['build', 'examples/hello', '--go', '1.22', '--out', out, '--json', '--quiet'], { env });
  expect(r.code, r.stderr + r.stdout).toBe(0);
  const built = JSON.parse(r.stdout);
  expect(built.evidence).toEqual({ files: expect.arrayContaining(['provenance.intoto.jsonl']) });
  const id = built.id as string;
  const keys = (await api.get('/v1/keys')).body.keys;
  const pub = path.join(out, '..', `${path.basename(out)}.pub.pem`);
  await writeFile(pub, keys[0].publicKey);
  hello = { id, out, doc: (await api.get(`/v1/builds/${id}`)).body, pub };
}, 300_000);

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

function statementOf(envelope: any): any {
  return JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
}

describe('the signing key', () => {
  it('is generated once into the data directory and listed by GET /v1/keys with its id, the sha256 of its DER public key', async () => {
    const res = await api.get('/v1/keys');
    expect(res.status).toBe(200);
    expect(res.body.keys).toHaveLength(1);
    const [key] = res.body.keys;
    expect(key).toMatchObject({ algorithm: 'ecdsa-p256-sha256', current: true });
    expect(key.keyid).toBe(sha256(createPublicKey(key.publicKey).export({ type: 'spki', format: 'der' })));
    expect((await readdir(path.join(dataDir, 'keys'))).sort()).toEqual(['public', 'signing-key.pem']);
    expect(await readdir(path.join(dataDir, 'keys', 'public'))).toEqual([`${key.keyid}.json`]);
  });

  it('is one key when several processes start on a new data directory at once', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-keyrace-'));
    const script = `import(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'provenance', 'signing-keys.js'))}).then((m) => process.stdout.write(m.SigningKeys.open({ dataDir: ${JSON.stringify(dir)} }, { info() {} }).current.keyid))`;
    const ids = await Promise.all(Array.from({ length: 6 }, () => execFileP(process.execPath, ['-e', script]).then((r) => r.stdout)));
    expect(new Set(ids).size, ids.join('\n')).toBe(1);
    expect(await readdir(path.join(dir, 'keys', 'public'))).toEqual([`${ids[0]}.json`]);
    expect((await readdir(path.join(dir, 'keys'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a PLUGFORGE_SIGNING_KEY that is not an ECDSA P-256 private key, naming the variable', async () => {
    const rsa = path.join(await mkdtemp(path.join(os.tmpdir(), 'plugforge-rsa-')), 'rsa.pem');
    await writeFile(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    expect(() => loadConfig({ PLUGFORGE_SIGNING_KEY: rsa })).toThrow(ConfigError);
    expect(() => loadConfig({ PLUGFORGE_SIGNING_KEY: rsa })).toThrow(/PLUGFORGE_SIGNING_KEY=.*not ECDSA P-256/);
    expect(() => loadConfig({ PLUGFORGE_SIGNING_KEY: '/nonexistent/key.pem' })).toThrow(/PLUGFORGE_SIGNING_KEY=.*cannot be read/);
  });
});

describe('a build of examples/hello', () => {
  it('has a SLSA v1 provenance whose subjects are the four artifacts, with the source, the builder images and each verification', async () => {
    const res = await api.get(`/v1/builds/${hello.id}/provenance`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.payloadType).toBe('application/vnd.in-toto+json');
    const st = statementOf(res.body);
    expect(st._type).toBe('https://in-toto.io/Statement/v1');
    expect(st.predicateType).toBe('https://slsa.dev/provenance/v1');
    const doc = hello.doc;
    expect(st.subject).toEqual(
      TARGET_IDS.map((t) => ({ name: doc.targets[t].artifact.name, digest: { sha256: doc.targets[t].artifact.sha256 } })),
    );
    const def = st.predicate.buildDefinition;
    expect(def.buildType).toBe('https://plugforge.dev/build/v1');
    expect(def.externalParameters).toMatchObject({
      source: { sha256: doc.source.sha256 },
      go: '1.22',
      targets: [...TARGET_IDS],
      name: doc.name,
      mode: 'plugin',
      host: doc.host,
      verify: 'strict',
      build: { trimpath: false, tags: [] },
    });
    expect(def.resolvedDependencies[0]).toEqual({
      name: 'source',
      digest: { sha256: doc.source.sha256 },
      annotations: { module: 'example.com/hello' },
    });
    for (const t of TARGET_IDS) {
      const [repo, tag] = doc.targets[t].image.split(':');
      expect(def.resolvedDependencies).toContainEqual({
        name: `builder/${t}`,
        uri: `pkg:docker/${repo}@${tag}`,
        annotations: { target: t, go },
      });
      const verify = st.predicate.runDetails.byproducts.find((b: any) => b.name === `verify/${t}`);
      expect(verify.annotations.status, t).toBe(doc.targets[t].verify.status);
      if (doc.targets[t].verify.probe?.how) expect(verify.annotations.probe).toBe(doc.targets[t].verify.probe.how);
    }
    // No PLUGFORGE_PUBLIC_URL here: the builder is named by the signing key, never by the request.
    const keyid = (await api.get('/v1/keys')).body.keys[0].keyid;
    expect(st.predicate.runDetails.builder.id).toBe(`urn:plugforge:builder:${keyid}`);
    expect(st.predicate.runDetails.metadata).toMatchObject({ invocationId: hello.id, finishedOn: doc.finishedAt });
    // Made from the stored state: asked again, the same statement.
    expect(statementOf((await api.get(`/v1/builds/${hello.id}/provenance`)).body)).toEqual(st);
  });

  it('is checked by cosign: each signature and the provenance, with the key of GET /v1/keys, offline', async () => {
    const files = (await readdir(hello.out)).sort();
    const names = TARGET_IDS.map((t) => hello.doc.targets[t].artifact.name);
    expect(files).toEqual(
      [...names, ...names.map((n) => `${n}.cdx.json`), ...names.map((n) => `${n}.sig`), 'provenance.intoto.jsonl'].sort(),
    );
    const envelope = path.join(hello.out, 'provenance.intoto.jsonl');
    for (const name of names) {
      const file = path.join(hello.out, name);
      const blob = await verifyBlob(hello.pub, file);
      expect(blob.code, blob.output).toBe(0);
      expect(blob.output).toContain('Verified OK');
      const attestation = await verifyAttestation(hello.pub, file, envelope);
      expect(attestation.code, attestation.output).toBe(0);
      expect(attestation.output).toContain('Verified OK');
    }
  });

  it("is checked by plugforge verify, with the server's keys or a key file, which names the source and the toolchain", async () => {
    const r = await runCli(['verify', hello.out], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('provenance.intoto.jsonl: signature OK');
    for (const t of TARGET_IDS)
      expect(r.stdout).toMatch(
        new RegExp(
          `^OK\\s+${hello.doc.targets[t].artifact.name}\\s+sha256 as in the provenance, signature by key [0-9a-f]{12}…, SBOM of these bytes$`,
          'm',
        ),
      );
    expect(r.stdout).toContain(`build ${hello.id}`);
    expect(r.stdout).toContain(`from source sha256 ${hello.doc.source.sha256} (module example.com/hello)`);
    expect(r.stdout).toContain(`with Go ${go} in pkg:docker/`);
    expect(r.stdout).toMatch(/^verified: 4 artifact\(s\)$/m);

    const one = await runCli(['verify', path.join(hello.out, hello.doc.targets['linux-arm64'].artifact.name), '--key', hello.pub], {
      env: {},
    });
    expect(one.code, one.stdout + one.stderr).toBe(0);
    expect(one.stdout).toMatch(/^verified: 1 artifact\(s\)$/m);
  });

  it('fails cosign and plugforge verify when one byte of an artifact changes', async () => {
    const copy = await mkdtemp(path.join(os.tmpdir(), 'plugforge-tamper-'));
    await cp(hello.out, copy, { recursive: true });
    const name = hello.doc.targets['linux-amd64'].artifact.name;
    const file = path.join(copy, name);
    const bytes = await readFile(file);
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0x01;
    await writeFile(file, bytes);

    const blob = await verifyBlob(hello.pub, file);
    expect(blob.code, blob.output).not.toBe(0);
    expect(blob.output).toMatch(/invalid signature/);
    const attestation = await verifyAttestation(hello.pub, file, path.join(copy, 'provenance.intoto.jsonl'));
    expect(attestation.code, attestation.output).not.toBe(0);
    expect(attestation.output).toContain('no matching subject digest found');

    const r = await runCli(['verify', copy, '--key', hello.pub], { env: {} });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(
        `^FAILED\\s+${name}\\s+sha256 [0-9a-f]{12}… is not the provenance's [0-9a-f]{12}…: the file was changed; ${name}.sig does not verify with key`,
        'm',
      ),
    );
    expect(r.stdout).toMatch(/^NOT verified: 1 of 4 artifact\(s\) failed$/m);
  });

  it('ships the same evidence in artifacts.tar.gz, which cosign and plugforge verify accept once unpacked', async () => {
    const res = await api.bytes(`/v1/builds/${hello.id}/artifacts.tar.gz`);
    expect(res.status).toBe(200);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-tarball-'));
    await writeFile(path.join(dir, 'a.tar.gz'), res.bytes);
    await execFileP('tar', ['-xzf', 'a.tar.gz'], { cwd: dir });
    const names = TARGET_IDS.map((t) => hello.doc.targets[t].artifact.name);
    const files = (await readdir(dir)).filter((f) => f !== 'a.tar.gz').sort();
    expect(files).toEqual(
      [
        'SHA256SUMS',
        'build.json',
        'provenance.intoto.jsonl',
        ...names,
        ...names.map((n) => `${n}.sig`),
        ...names.map((n) => `${n}.cdx.json`),
      ].sort(),
    );
    const attestation = await verifyAttestation(hello.pub, path.join(dir, names[3]!), path.join(dir, 'provenance.intoto.jsonl'));
    expect(attestation.code, attestation.output).toBe(0);
    const r = await runCli(['verify', dir, '--key', hello.pub], { env: {} });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('has an SBOM per artifact (CycloneDX 1.5) naming its bytes, the Go release and the build settings', async () => {
    const res = await api.get(`/v1/builds/${hello.id}/artifacts/linux-arm-7/sbom`);
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/vnd\.cyclonedx\+json/);
    const bom = res.body;
    expect(bom).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1 });
    expect(bom.metadata.component.hashes).toEqual([{ alg: 'SHA-256', content: hello.doc.targets['linux-arm-7'].artifact.sha256 }]);
    const props = Object.fromEntries(bom.metadata.component.properties.map((p: any) => [p.name, p.value]));
    expect(props).toMatchObject({
      'plugforge:go:version': go,
      'plugforge:go:build:-buildmode': 'plugin',
      'plugforge:go:build:GOARCH': 'arm',
      'plugforge:go:build:GOARM': '7',
    });
    expect(bom.components).toContainEqual(
      expect.objectContaining({ name: 'example.com/hello', purl: 'pkg:golang/example.com/hello@%28devel%29' }),
    );
    expect(bom.components).toContainEqual(expect.objectContaining({ name: 'stdlib', version: go }));
    // The signature route signs the same bytes (ECDSA signatures differ each time; each verifies).
    const sig = await api.get(`/v1/builds/${hello.id}/artifacts/linux-arm-7/signature`);
    expect(sig.status).toBe(200);
    const artifact = await readFile(path.join(hello.out, hello.doc.targets['linux-arm-7'].artifact.name));
    expect(verify('sha256', artifact, await readFile(hello.pub, 'utf8'), Buffer.from(sig.text.trim(), 'base64'))).toBe(true);
  });
});

describe('the routes', () => {
  it('answer as GET /v1/openapi.json describes them, and 409 while a build runs', async () => {
    const doc = (await api.get('/v1/openapi.json')).body;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    (addFormats as unknown as (a: Ajv2020) => void)(ajv);
    ajv.addSchema({ $id: 'https://plugforge.invalid/openapi.json', components: doc.components });
    const check = (route: string, res: { status: number; body: unknown }) => {
      const described = doc.paths[route].get.responses[String(res.status)] ?? doc.paths[route].get.responses[`${String(res.status)[0]}XX`];
      const validate = ajv.compile({ $ref: `https://plugforge.invalid/openapi.json${described.content['application/json'].schema.$ref}` });
      expect(validate(res.body), `${route} ${res.status}: ${JSON.stringify(validate.errors)}`).toBe(true);
    };
    check('/v1/keys', await api.get('/v1/keys'));
    check('/v1/builds/{id}/provenance', await api.get(`/v1/builds/${hello.id}/provenance`));
    check('/v1/builds/{id}/artifacts/{target}/sbom', await api.get(`/v1/builds/${hello.id}/artifacts/linux-s390x/sbom`));

    const running = await api.submit(
      await tarOf({ 'go.mod': 'module example.com/slow\n\ngo 1.22\n', 'plugin.go': 'package main\n\nfunc main() {}\n' }, { gzip: true }),
      'targets=linux-amd64',
    );
    expect(running.status).toBe(202);
    const early = await api.get(`/v1/builds/${running.body.id}/provenance`);
    await api.request('DELETE', `/v1/builds/${running.body.id}`);
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('build_not_ended');
    check('/v1/builds/{id}/provenance', early);
  });
});

describe('a rotated key', () => {
  it('signs from then on, and the keys before it stay listed so that earlier downloads still verify', async () => {
    const keyFile = path.join(await mkdtemp(path.join(os.tmpdir(), 'plugforge-key-')), 'signing.pem');
    await writeFile(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    // A second API process on the same data directory and Redis, with the new key.
    const rotated = await startService(
      'api',
      await testConfig({ PLUGFORGE_DATA_DIR: dataDir, PLUGFORGE_SIGNING_KEY: keyFile, PLUGFORGE_REDIS_URL: TEST_REDIS_URL }),
    );
    try {
      const base = `http://127.0.0.1:${rotated.port}`;
      const keys = (await new ApiClient(base).get('/v1/keys')).body.keys;
      expect(keys).toHaveLength(2);
      expect(keys[0].current).toBe(true);
      expect(keys[0].keyid).toBe(sha256(createPublicKey(await readFile(keyFile)).export({ type: 'spki', format: 'der' })));
      expect(keys[1]).toMatchObject({ current: false, publicKey: await readFile(hello.pub, 'utf8') });
      // Files signed by the old key check against the server's list.
      const old = await runCli(['verify', hello.out], { env: { PLUGFORGE_URL: base } });
      expect(old.code, old.stdout + old.stderr).toBe(0);
      // The provenance served now is signed by the new key.
      const envelope = (await new ApiClient(base).get(`/v1/builds/${hello.id}/provenance`)).body;
      expect(envelope.signatures[0].keyid).toBe(keys[0].keyid);
    } finally {
      await rotated.stop();
    }
  });
});

describe('the SBOM of a plugin built from vendor/', () => {
  it('lists gin and its dependencies at the versions vendored, and the provenance lists them too', async () => {
    const { files: vendor, require } = await ginVendorTree(docker, `plugforge/build:${go}-linux-amd64`);
    const plugin = `package main\n\nimport "github.com/gin-gonic/gin"\n\n// New makes an engine.\nfunc New() *gin.Engine { return gin.New() }\n\nfunc main() {}\n`;
    const files = { ...vendor, 'go.mod': `module example.com/gin-sbom\n\ngo 1.22\n\n${require}`, 'plugin.go': plugin };
    const accepted = await api.submit(await tarOf(files, { gzip: true }), 'targets=linux-amd64&host=generic');
    expect(accepted.status, accepted.text).toBe(202);
    const done = await api.waitFor(accepted.body.id, undefined, 600_000);
    expect(done.status, JSON.stringify(done.targets)).toBe('succeeded');
    const bom = (await api.get(`/v1/builds/${done.id}/artifacts/linux-amd64/sbom`)).body;
    const required = [...require.matchAll(/^\t(\S+) (\S+)$/gm)].map((m) => ({ path: m[1]!, version: m[2]! }));
    expect(required.length).toBeGreaterThan(3);
    const listed = new Map(bom.components.map((c: any) => [c.name, c.version]));
    expect(listed.get('github.com/gin-gonic/gin')).toBe('v1.8.1');
    // Each module linked is a vendored one, at its vendored version; gin's own dependencies are there.
    const linked = bom.components.filter((c: any) => c.name !== 'stdlib' && c.name !== 'example.com/gin-sbom');
    expect(linked.length).toBeGreaterThan(3);
    for (const c of linked) expect(required, c.name).toContainEqual({ path: c.name, version: c.version });
    const st = statementOf((await api.get(`/v1/builds/${done.id}/provenance`)).body);
    expect(st.predicate.buildDefinition.resolvedDependencies.map((d: any) => d.uri)).toContain(
      'pkg:golang/github.com/gin-gonic/gin@v1.8.1',
    );
  }, 600_000);
});
