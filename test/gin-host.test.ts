import { chmod, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { ginVendorTree } from './support/gin-vendor.js';
import { runHostOn, shInImage, writeTree } from './support/go-programs.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';

/**
 * The case that build info cannot tell: a gotify-style plugin vendoring gin (Debian's gin
 * 1.8.1 and its dependencies), and two hosts vendoring the same versions, one of them with
 * gin edited in place. Their build info is identical; plugin.Open in the edited host refuses
 * the plugin. plugforge, given the host executable, must say so, and pass the real one.
 */
let docker: Docker;
let redis: Redis;
let service: RunningService;
let api: ApiClient;
let go = '';
let work = '';
let pluginFiles: Record<string, string> = {};
let host: Buffer;
let skewed: Buffer;

const PLUGIN_GO = `package main

import "github.com/gin-gonic/gin"

// GetGotifyPluginInfo describes the plugin.
func GetGotifyPluginInfo() map[string]string { return map[string]string{"name": "gin-hello"} }

// Plugin is one instance per user, with its own routes.
type Plugin struct{ router *gin.Engine }

// NewGotifyPluginInstance makes an instance.
func NewGotifyPluginInstance(userID uint) *Plugin { return &Plugin{router: gin.New()} }

func main() {}
`;

const HOST_GO = `package main

import (
	"fmt"
	"os"
	"plugin"

	"github.com/gin-gonic/gin"
)

func main() {
	_ = gin.New()
	if len(os.Args) > 1 {
		_, err := plugin.Open(os.Args[1])
		fmt.Println("open:", err)
	}
}
`;

/** What the edited host's gin gains: same version, other content. */
const SKEW = '\n// PatchedInPlace marks a gin edited without a version change.\nfunc PatchedInPlace() bool { return true }\n';

/** Builds both hosts in the amd64 builder image, -trimpath, from vendor/. */
async function buildHosts(vendor: Record<string, string>, require: string): Promise<void> {
  const goMod = `module example.com/gin-host\n\ngo 1.22\n\n${require}`;
  await writeTree(path.join(work, 'host'), { ...vendor, 'go.mod': goMod, 'main.go': HOST_GO });
  const gin = 'vendor/github.com/gin-gonic/gin/gin.go';
  await writeTree(path.join(work, 'skewed'), { ...vendor, [gin]: vendor[gin] + SKEW, 'go.mod': goMod, 'main.go': HOST_GO });
  await chmod(work, 0o777);
  await shInImage(
    docker,
    `plugforge/build:${go}-linux-amd64`,
    work,
    'for d in host skewed; do (cd $d && go build -mod=vendor -trimpath -buildvcs=false -o ../$d.bin .); done',
  );
  host = await readFile(path.join(work, 'host.bin'));
  skewed = await readFile(path.join(work, 'skewed.bin'));
}

function runHost(binary: Buffer, plugin: Buffer): Promise<string> {
  return runHostOn(docker, `plugforge/build:${go}-linux-amd64`, work, binary, plugin);
}

async function submit(binary: Buffer): Promise<any> {
  const form = new FormData();
  form.set('targets', 'linux-amd64');
  form.set('host', 'gotify');
  form.set('source', new Blob([await tarOf(pluginFiles, { gzip: true })]), 'plugin.tar.gz');
  form.set('hostBinary', new Blob([binary]), 'gotify-linux-amd64');
  const res = await fetch(`${api.base}/v1/builds`, { method: 'POST', body: form });
  const body = (await res.json()) as { id: string };
  expect(res.status, JSON.stringify(body)).toBe(202);
  return api.waitFor(body.id, undefined, 600_000);
}

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-gin-'));
  const { files: vendor, require } = await ginVendorTree(docker, `plugforge/build:${go}-linux-amd64`);
  pluginFiles = { ...vendor, 'go.mod': `module example.com/gin-hello\n\ngo 1.22\n\n${require}`, 'plugin.go': PLUGIN_GO };
  await buildHosts(vendor, require);
  service = await startService('serve', await testConfig());
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
}, 600_000);

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

describe('a gin plugin against gin hosts of identical build info', () => {
  it('the edited host: the target fails verification naming github.com/gin-gonic/gin, as the host itself does', async () => {
    const doc = await submit(skewed);
    const t = doc.targets['linux-amd64'];
    expect(doc.status, JSON.stringify(t)).toBe('failed');
    expect(t.error.code).toBe('package_mismatch');
    expect(t.verify.fingerprints.differing).toEqual(['github.com/gin-gonic/gin']);
    expect(t.error.message).toContain('plugin was built with a different version of package github.com/gin-gonic/gin');
    const artifact = Buffer.from(await (await fetch(t.artifact.url)).arrayBuffer());
    expect(await runHost(skewed, artifact)).toContain('plugin was built with a different version of package github.com/gin-gonic/gin');
  }, 900_000);

  it('the real host: passes on its fingerprints, and the host loads the artifact', async () => {
    const doc = await submit(host);
    const t = doc.targets['linux-amd64'];
    expect(doc.status, JSON.stringify(t)).toBe('succeeded');
    expect(t.verify).toMatchObject({ status: 'passed', method: 'fingerprints', probe: { status: 'passed' } });
    expect(t.verify.fingerprints.compared).toBeGreaterThan(100);
    const artifact = Buffer.from(await (await fetch(t.artifact.url)).arrayBuffer());
    expect(await runHost(host, artifact)).toContain('open: <nil>');
  }, 900_000);
});
