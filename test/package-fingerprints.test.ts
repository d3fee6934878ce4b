import { chmod, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { resolveHost } from '../src/host/host-request.js';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { TARGET_IDS, TARGETS, type ImageTargetId } from '../src/contract/targets.js';
import { compareFingerprints, readPackageFingerprints, readPackageOrder } from '../src/verify/package-fingerprints.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { runHostOn, shInImage, writeTree } from './support/go-programs.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';

/**
 * The exact load check against a host binary, on real binaries: for every target, a host
 * (imports plugin, vendors example.com/shared v1.0.0), the same host with shared's content
 * changed at the same version (identical build info), a host built without package plugin,
 * and a gotify-style plugin vendoring the same shared, each built with -trimpath in that
 * target's builder image. The rule is checked against Go's own: the amd64 hosts load (or
 * refuse) the artifact for real. Nothing here needs the worker's kernel to run 32-bit x86.
 */
let docker: Docker;
let redis: Redis;
let go = '';
let work = '';

const SHARED = 'package shared\n\n// Version names the release.\nfunc Version() string { return "v1.0.0" }\n';
const SHARED_SKEWED = 'package shared\n\n// Version names the release.\nfunc Version() string { return "v1.0.0, patched in place" }\n';
const MODULES_TXT = '# example.com/shared v1.0.0\n## explicit; go 1.21\nexample.com/shared\n';

const HOST_GO_MOD = 'module example.com/host\n\ngo 1.22\n\nrequire example.com/shared v1.0.0\n';
const HOST_MAIN = `package main

import (
	"fmt"
	"os"
	"plugin"

	"example.com/shared"
)

func main() {
	fmt.Println("host with shared", shared.Version())
	if len(os.Args) > 1 {
		_, err := plugin.Open(os.Args[1])
		fmt.Println("open:", err)
	}
}
`;
const NO_PLUGIN_MAIN = 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/shared"\n)\n\nfunc main() { fmt.Println(shared.Version()) }\n';

const PLUGIN_FILES: Record<string, string> = {
  'go.mod': 'module example.com/gotify-shared\n\ngo 1.22\n\nrequire example.com/shared v1.0.0\n',
  'plugin.go': `package main

import "example.com/shared"

// Info is what a gotify-style host reads from the plugin.
type Info struct{ ModulePath, Version string }

// GetGotifyPluginInfo describes the plugin.
func GetGotifyPluginInfo() Info { return Info{ModulePath: "example.com/gotify-shared", Version: shared.Version()} }

// Plugin is one instance per user.
type Plugin struct{}

// NewGotifyPluginInstance makes an instance.
func NewGotifyPluginInstance(userID uint) *Plugin { return &Plugin{} }

func main() {}
`,
  'vendor/modules.txt': MODULES_TXT,
  'vendor/example.com/shared/shared.go': SHARED,
};

interface Built {
  host: Buffer;
  skewed: Buffer;
  stripped: Buffer;
  noPlugin: Buffer;
  plugin: Buffer;
}
const built = {} as Record<ImageTargetId, Built>;

const STRIP: Record<ImageTargetId, string> = {
  'linux-amd64': 'strip',
  'linux-arm-7': 'arm-linux-gnueabihf-strip',
  'linux-arm64': 'aarch64-linux-gnu-strip',
  'linux-386': 'i686-linux-gnu-strip',
};

/**
 * Runs a trusted script in a target's builder image with `dir` at /src: a plain go build
 * there uses the image's defaults (GOARM, GO386, GOAMD64), as a host built in it would.
 */
function shIn(target: ImageTargetId, dir: string, script: string): Promise<void> {
  return shInImage(docker, `plugforge/build:${go}-${target}`, dir, script, ['GOFLAGS=-mod=vendor']);
}

/** The four programs of one target, built in its image. */
async function buildFor(target: ImageTargetId): Promise<Built> {
  const dir = path.join(work, target);
  const host = (main: string, shared: string) => ({
    'go.mod': HOST_GO_MOD,
    'main.go': main,
    'vendor/modules.txt': MODULES_TXT,
    'vendor/example.com/shared/shared.go': shared,
  });
  await writeTree(path.join(dir, 'host'), host(HOST_MAIN, SHARED));
  await writeTree(path.join(dir, 'skewed'), host(HOST_MAIN, SHARED_SKEWED));
  await writeTree(path.join(dir, 'noplugin'), host(NO_PLUGIN_MAIN, SHARED));
  await writeTree(path.join(dir, 'plugin'), PLUGIN_FILES);
  await chmod(dir, 0o777);
  await shIn(
    target,
    dir,
    [
      'for d in host skewed noplugin; do (cd $d && go build -trimpath -buildvcs=false -o ../$d.bin .); done',
      '(cd plugin && go build -trimpath -buildvcs=false -buildmode=plugin -o ../plugin.so .)',
      `${STRIP[target]} -s -o stripped.bin host.bin`,
    ].join('\n'),
  );
  const read = (f: string) => readFile(path.join(dir, f));
  return {
    host: await read('host.bin'),
    skewed: await read('skewed.bin'),
    stripped: await read('stripped.bin'),
    noPlugin: await read('noplugin.bin'),
    plugin: await read('plugin.so'),
  };
}

/** Runs an amd64 host on an amd64 plugin, as it runs at start-up: what plugin.Open said. */
function runHost(host: Buffer, plugin: Buffer): Promise<string> {
  return runHostOn(docker, `plugforge/build:${go}-linux-amd64`, work, host, plugin);
}

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-fingerprints-'));
  await chmod(work, 0o755);
  // One target at a time: each compiles the standard library in its image.
  for (const t of TARGET_IDS) built[t] = await buildFor(t);
}, 600_000);

afterAll(() => {
  redis?.disconnect();
});

describe('package fingerprints read from real binaries, all four targets', () => {
  it.each(TARGET_IDS)(
    '%s: the host and the plugin share packages, all alike; the skewed host differs in exactly example.com/shared',
    (target) => {
      const b = built[target];
      const host = readPackageFingerprints(b.host);
      const plugin = readPackageFingerprints(b.plugin);
      for (const pkg of ['runtime', 'plugin', 'example.com/shared']) expect(host[pkg]).toMatch(/^[0-9a-f]{16}$/);
      expect(plugin['example.com/shared']).toBe(host['example.com/shared']);
      const same = compareFingerprints(host, plugin);
      expect(same.differing).toEqual([]);
      expect(same.compared).toBeGreaterThan(10);
      const skewed = compareFingerprints(readPackageFingerprints(b.skewed), plugin);
      expect(skewed.differing).toEqual(['example.com/shared']);
      expect(skewed.compared).toBe(same.compared);
      // The plugin's link order (the order plugin.Open checks in) names the same packages.
      expect([...readPackageOrder(b.plugin).keys()].sort()).toEqual(Object.keys(plugin).sort());
    },
  );

  it.each(TARGET_IDS)('%s: strip -s keeps them (the dynamic symbol table), a host without package plugin has none', (target) => {
    const b = built[target];
    expect(b.stripped.length).toBeLessThan(b.host.length);
    expect(readPackageFingerprints(b.stripped)).toEqual(readPackageFingerprints(b.host));
    expect(readPackageFingerprints(b.noPlugin)).toEqual({});
    expect(b.host.readUInt16LE(18)).toBe(TARGETS[target].elfMachine);
  });

  it('agrees with plugin.Open itself: the real host loads the artifact, the skewed host refuses it naming the package', async () => {
    const b = built['linux-amd64'];
    expect(await runHost(b.host, b.plugin)).toContain('open: <nil>');
    expect(await runHost(b.skewed, b.plugin)).toContain('plugin was built with a different version of package example.com/shared');
  }, 60_000);

  it('refuses host binaries that cannot load plugins, two of one target, and several of different Go releases', () => {
    const plugin = { goMod: PLUGIN_FILES['go.mod']!, vendored: true };
    const caught = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err as PlugforgeError;
      }
      throw new Error('expected an error');
    };
    const noPlugin = caught(() => resolveHost({}, [built['linux-amd64'].noPlugin], plugin));
    expect(noPlugin.code).toBe('host_cannot_load_plugins');
    expect(noPlugin.status).toBe(422);
    expect(caught(() => resolveHost({}, [built['linux-amd64'].host, built['linux-amd64'].skewed], plugin)).code).toBe(
      'host_binary_invalid',
    );
    expect(caught(() => resolveHost({}, [built['linux-amd64'].host, Buffer.from('host: go1.22.12\n')], plugin)).code).toBe(
      'host_binary_invalid',
    );
    const r = resolveHost({}, [built['linux-amd64'].host, built['linux-arm64'].host, built['linux-386'].host], plugin, [
      'linux-amd64',
      'linux-arm64',
    ]);
    expect(r.hostBinaries.map((h) => h.target)).toEqual(['linux-amd64', 'linux-arm64']);
    expect(r.hostMatch?.notes.join('\n')).toContain('the host binary for linux-386 was not used');
    expect(r.hostMatch?.archs?.map((a) => a.goarch)).toEqual(['amd64', 'arm64', '386']);
  });
});

describe('a build checked against host binaries', () => {
  let service: RunningService;
  let api: ApiClient;

  beforeAll(async () => {
    service = await startService('serve', await testConfig());
    api = new ApiClient(`http://127.0.0.1:${service.port}`);
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
  });

  async function submit(binaries: Buffer[], fields: Record<string, string>): Promise<any> {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.set(k, v);
    form.set('source', new Blob([await tarOf(PLUGIN_FILES, { gzip: true })]), 'plugin.tar.gz');
    binaries.forEach((b, i) => form.append('hostBinary', new Blob([b]), `host-${i}`));
    const res = await fetch(`${api.base}/v1/builds`, { method: 'POST', body: form });
    const body = (await res.json()) as { id: string };
    expect(res.status, JSON.stringify(body)).toBe(202);
    return api.waitFor(body.id, undefined, 600_000);
  }

  it("plugforge's own builds load into a host built in the same image with a plain go build, all four targets (the image's defaults are the builds')", async () => {
    const res = await api.submit(
      await tarOf(PLUGIN_FILES, { gzip: true }),
      `targets=${TARGET_IDS.join(',')}&host=gotify&trimpath=true&name=plain`,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const doc = await api.waitFor(res.body.id, undefined, 600_000);
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    for (const t of TARGET_IDS) {
      const artifact = Buffer.from(await (await fetch(doc.targets[t].artifact.url)).arrayBuffer());
      const against = compareFingerprints(
        readPackageFingerprints(built[t].host),
        readPackageFingerprints(artifact),
        readPackageOrder(artifact),
      );
      expect(against.differing, t).toEqual([]);
      expect(against.compared, t).toBeGreaterThan(10);
      if (t === 'linux-amd64') expect(await runHost(built[t].host, artifact)).toContain('open: <nil>');
    }
  }, 900_000);

  it('amd64 and arm64 host binaries given together: each target is checked against its own, and the document says so', async () => {
    const doc = await submit([built['linux-arm64'].host, built['linux-amd64'].host], {
      targets: 'linux-amd64,linux-arm64',
      host: 'gotify',
    });
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    expect(doc.hostBinaries.map((h: any) => h.target).sort()).toEqual(['linux-amd64', 'linux-arm64']);
    for (const t of ['linux-amd64', 'linux-arm64'] as const) {
      const v = doc.targets[t].verify;
      const ref = doc.hostBinaries.find((h: any) => h.target === t);
      expect(v.method).toBe('fingerprints');
      expect(v.fingerprints.hostBinary).toBe(ref.sha256);
      expect(v.fingerprints.differing).toEqual([]);
      expect(v.fingerprints.compared).toBeGreaterThan(10);
      expect(v.probe.status).toBe('passed');
    }
    // The artifact plugforge offers is the one the real host loads.
    const artifact = Buffer.from(await (await fetch(doc.targets['linux-amd64'].artifact.url)).arrayBuffer());
    expect(await runHost(built['linux-amd64'].host, artifact)).toContain('open: <nil>');
  }, 900_000);

  it('a host whose shared package differs only in content (same build info): refused, naming the package, on both targets', async () => {
    const doc = await submit([built['linux-amd64'].skewed, built['linux-arm64'].skewed], {
      targets: 'linux-amd64,linux-arm64',
      host: 'gotify',
    });
    expect(doc.status).toBe('failed');
    for (const t of ['linux-amd64', 'linux-arm64'] as const) {
      const s = doc.targets[t];
      expect(s.error.code).toBe('package_mismatch');
      expect(s.error.message).toContain('plugin was built with a different version of package example.com/shared');
      expect(s.verify.fingerprints.differing).toEqual(['example.com/shared']);
      expect(s.artifact.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    // The probe, built from the plugin's own sources, would have passed it: the host binary is what tells.
    const artifact = Buffer.from(await (await fetch(doc.targets['linux-amd64'].artifact.url)).arrayBuffer());
    expect(await runHost(built['linux-amd64'].skewed, artifact)).toContain(
      'plugin was built with a different version of package example.com/shared',
    );
  }, 900_000);
});
