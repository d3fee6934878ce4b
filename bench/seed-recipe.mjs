#!/usr/bin/env node
// plugforge against the seed recipe, in one run, on a real gotify-style plugin: gotify's
// plugin template (plugin.go importing github.com/gotify/plugin-api and gin), vendoring
// Debian's gin 1.8.1 and its dependencies (golang-github-gin-gonic-gin-dev, which
// ./scripts/test installs), for the three targets the template's Makefile builds.
//
//   node bench/seed-recipe.mjs [--url http://localhost:8080] [--go 1.22.12] [--runs 1]
//
// It measures, per run:
// - seed: the template's recipe, one `docker run --rm … go build -a -installsuffix cgo
//   -buildmode=plugin` per target, one after the other, in plugforge's builder images;
// - cold: `plugforge build` with the toolchain's build-cache volumes dropped first;
// - edit: `plugforge build` after a one-line edit of plugin.go (warm caches);
// - same: `plugforge build` of the identical source again (reuse: nothing runs);
// - limit: the compile alone: the same one-line edit compiled with a warm cache in one
//   long-lived builder container per target, the three one after the other (nothing around
//   the compiler: no upload, no container made, no artifact taken out, no load check).
// Every plugforge time is the CLI's whole run: pack, upload, build, download, sha256 check.
// Prints each figure, the medians and seed ÷ each. Needs the Docker CLI on the engine the
// worker uses, and a plugforge serving at --url (./scripts/serve).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.PLUGFORGE_URL ?? 'http://localhost:8080' },
    go: { type: 'string', default: '1.22.12' },
    runs: { type: 'string', default: '1' },
    repo: { type: 'string', default: 'plugforge/build' },
  },
});
const TARGETS = [
  { id: 'linux-amd64', env: ['GOOS=linux', 'GOARCH=amd64', 'CC=gcc'] },
  { id: 'linux-arm-7', env: ['GOOS=linux', 'GOARCH=arm', 'GOARM=7', 'CC=arm-linux-gnueabihf-gcc'] },
  { id: 'linux-arm64', env: ['GOOS=linux', 'GOARCH=arm64', 'CC=aarch64-linux-gnu-gcc'] },
];
const GOCODE = '/usr/share/gocode';
const image = (t) => `${values.repo}:${values.go}-${t}`;
const docker = (...args) => execFileSync('docker', args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).toString();
const seconds = (start) => (performance.now() - start) / 1000;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The plugin: plugin.go, a go.mod whose requirements match vendor/, and vendor/ from Debian's sources. */
function makePlugin(dir) {
  const list = docker('run', '--rm', '--network', 'none', '-v', `${GOCODE}:/gopath:ro`, '-e', 'GO111MODULE=off', '-e', 'GOPATH=/gopath', '-e', 'GOCACHE=/tmp/gocache', image('linux-amd64'), 'go', 'list', '-deps', '-f', '{{if not .Standard}}{{.ImportPath}}{{end}}', 'github.com/gin-gonic/gin');
  const modules = new Map();
  for (const pkg of list.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const module = moduleOf(pkg);
    const entry = modules.get(module.path) ?? { version: versionOf(module.path), go: module.go, packages: [] };
    entry.packages.push(pkg);
    modules.set(module.path, entry);
    const from = path.join(GOCODE, 'src', pkg);
    mkdirSync(path.join(dir, 'vendor', pkg), { recursive: true });
    for (const f of readdirSync(from)) {
      if (!/\.(go|s|h|c)$/.test(f) || f.endsWith('_test.go') || !statSync(path.join(from, f)).isFile()) continue;
      writeFileSync(path.join(dir, 'vendor', pkg, f), readFileSync(path.join(from, f)));
    }
  }
  // gotify's plugin API: the interfaces the template implements (not in Debian; a few lines).
  modules.set('github.com/gotify/plugin-api', { version: 'v1.0.0', packages: ['github.com/gotify/plugin-api'] });
  mkdirSync(path.join(dir, 'vendor/github.com/gotify/plugin-api'), { recursive: true });
  writeFileSync(path.join(dir, 'vendor/github.com/gotify/plugin-api/plugin.go'), PLUGIN_API);
  const sorted = [...modules.entries()].sort(([a], [b]) => a.localeCompare(b));
  writeFileSync(path.join(dir, 'vendor/modules.txt'), sorted.map(([m, e]) => `# ${m} ${e.version}\n## explicit${e.go ? `; go ${e.go}` : ''}\n${e.packages.sort().join('\n')}\n`).join(''));
  writeFileSync(path.join(dir, 'go.mod'), `module github.com/example/gotify-gin-plugin\n\ngo 1.22\n\nrequire (\n${sorted.map(([m, e]) => `\t${m} ${e.version}\n`).join('')})\n`);
  writeFileSync(path.join(dir, 'plugin.go'), pluginSource(0));
}

function moduleOf(pkg) {
  const parts = pkg.split('/');
  for (let n = parts.length; n >= 1; n--) {
    let text;
    try {
      text = readFileSync(path.join(GOCODE, 'src', ...parts.slice(0, n), 'go.mod'), 'utf8');
    } catch {
      continue;
    }
    return { path: /^module\s+(\S+)/m.exec(text)?.[1] ?? parts.slice(0, n).join('/'), go: /^go\s+(\d+\.\d+)/m.exec(text)?.[1] };
  }
  return { path: parts.slice(0, 3).join('/') };
}

function versionOf(module) {
  if (module === 'github.com/gin-gonic/gin') return 'v1.8.1';
  const major = /(?:\/v|\.v)(\d+)$/.exec(module)?.[1];
  return `v${major && major !== '1' ? major : '0'}.0.0-debian`;
}

const PLUGIN_API = `// Package plugin is the part of gotify's plugin API the template uses.
package plugin

// Info is what gotify reads from a plugin.
type Info struct {
	ModulePath, Version, Author, Website, Description, License, Name string
}

// UserContext is the user a plugin instance belongs to.
type UserContext struct {
	ID    uint
	Name  string
	Admin bool
}

// Plugin is every plugin instance.
type Plugin interface {
	Enable() error
	Disable() error
}
`;

/** The template's plugin.go, with a line that the one-line edit changes. */
function pluginSource(edit) {
  return `package main

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/gotify/plugin-api"
)

// GetGotifyPluginInfo returns gotify plugin info.
func GetGotifyPluginInfo() plugin.Info {
	return plugin.Info{ModulePath: "github.com/example/gotify-gin-plugin", Version: "1.0.${edit}", Name: "gin plugin"}
}

// MyPlugin is the gotify plugin instance.
type MyPlugin struct{ enabled bool }

// Enable enables the plugin.
func (c *MyPlugin) Enable() error { c.enabled = true; return nil }

// Disable disables the plugin.
func (c *MyPlugin) Disable() error { c.enabled = false; return nil }

// RegisterWebhook implements plugin.Webhooker.
func (c *MyPlugin) RegisterWebhook(basePath string, g *gin.RouterGroup) {
	g.GET("/echo", func(ctx *gin.Context) { ctx.String(http.StatusOK, "edit ${edit}") })
}

// NewGotifyPluginInstance creates a plugin instance for a user context.
func NewGotifyPluginInstance(ctx plugin.UserContext) plugin.Plugin {
	return &MyPlugin{}
}

func main() {
	panic("this should be built as go plugin")
}
`;
}

/** The seed recipe: the template's Makefile, a fresh container per target, everything compiled (-a). */
function seed(dir) {
  const start = performance.now();
  for (const t of TARGETS) {
    docker('run', '--rm', '--network', 'none', '-u', `${process.getuid()}:${process.getgid()}`, '-v', `${dir}:/proj`, '-w', '/proj', ...t.env.flatMap((e) => ['-e', e]), '-e', 'CGO_ENABLED=1', '-e', 'GOCACHE=/tmp/gocache', '-e', 'HOME=/tmp', '-e', 'GOFLAGS=-mod=vendor', image(t.id), 'go', 'build', '-a', '-installsuffix', 'cgo', '-ldflags', '-w -s', '-buildmode=plugin', '-o', `build/gin-plugin-${t.id}.so`, '.');
  }
  return seconds(start);
}

function plugforge(dir, out) {
  const start = performance.now();
  execFileSync(process.execPath, ['bin/plugforge.js', 'build', dir, '--server', values.url, '--go', values.go, '--targets', TARGETS.map((t) => t.id).join(','), '--host', 'gotify', '--strip', '--out', out, '--quiet'], { stdio: ['ignore', 'ignore', 'inherit'] });
  return seconds(start);
}

function dropCaches() {
  const volumes = docker('volume', 'ls', '-q', '--filter', 'name=plugforge-gocache-').split('\n').filter((v) => v.includes(`-${values.go}-`));
  if (volumes.length) docker('volume', 'rm', '-f', ...volumes);
}

/** The compile alone: per target, one container with a warm cache, the edit compiled once more. */
function compileLimit(dir) {
  let total = 0;
  for (const t of TARGETS) {
    const name = `plugforge-bench-limit-${process.pid}-${t.id}`;
    docker('run', '-d', '--name', name, '--network', 'none', '-u', `${process.getuid()}:${process.getgid()}`, '-v', `${dir}:/proj`, '-w', '/proj', ...t.env.flatMap((e) => ['-e', e]), '-e', 'CGO_ENABLED=1', '-e', 'GOCACHE=/tmp/gocache', '-e', 'HOME=/tmp', '-e', 'GOFLAGS=-mod=vendor', image(t.id), 'sleep', 'infinity');
    try {
      const build = () => docker('exec', name, 'go', 'build', '-buildvcs=false', '-buildmode=plugin', '-ldflags=-s -w', '-o', `/tmp/limit-${t.id}.so`, '.');
      build();
      writeFileSync(path.join(dir, 'plugin.go'), pluginSource(`limit-${t.id}`));
      const start = performance.now();
      build();
      total += seconds(start);
    } finally {
      docker('rm', '-f', name);
    }
  }
  return total;
}

const runs = Number(values.runs);
const figures = { seed: [], cold: [], edit: [], same: [], limit: [] };
const root = mkdtempSync(path.join(os.tmpdir(), 'plugforge-seed-'));
try {
  for (let run = 1; run <= runs; run++) {
    const dir = path.join(root, `plugin-${run}`);
    mkdirSync(dir, { recursive: true });
    makePlugin(dir);
    if (run === 1) {
      const bytes = execFileSync('tar', ['-C', dir, '-czf', '-', '.'], { maxBuffer: 256 << 20 }).length;
      console.log(`plugin: ${readdirSync(path.join(dir, 'vendor'), { recursive: true }).length} vendor entries, ${(bytes / 1048576).toFixed(1)} MiB as tar.gz; Go ${values.go}; ${TARGETS.map((t) => t.id).join(', ')}`);
    }
    const out = path.join(root, `out-${run}`);
    figures.seed.push(seed(dir));
    rmSync(path.join(dir, 'build'), { recursive: true, force: true });
    dropCaches();
    writeFileSync(path.join(dir, 'plugin.go'), pluginSource(`cold-${run}-${Date.now()}`));
    figures.cold.push(plugforge(dir, out));
    writeFileSync(path.join(dir, 'plugin.go'), pluginSource(`edit-${run}-${Date.now()}`));
    figures.edit.push(plugforge(dir, out));
    figures.same.push(plugforge(dir, out));
    figures.limit.push(compileLimit(dir));
    console.log(`run ${run}: ${Object.entries(figures).map(([k, v]) => `${k} ${v.at(-1).toFixed(2)} s`).join(', ')}`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
const m = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, median(v)]));
console.log(`\nmedians of ${runs} run(s):`);
console.log(`  seed recipe (3 targets, -a, one after the other)  ${m.seed.toFixed(2)} s   1`);
for (const [k, label] of [['cold', 'plugforge cold (build caches dropped)'], ['edit', 'plugforge warm, a one-line edit'], ['same', 'plugforge, the identical source again']]) {
  console.log(`  ${label.padEnd(49)} ${m[k].toFixed(2)} s   seed ÷ this ${(m.seed / m[k]).toFixed(1)}`);
}
console.log(`  compile-only limit of the edit (3 targets)        ${m.limit.toFixed(2)} s   edit ÷ limit ${(m.edit / m.limit).toFixed(2)}`);
