// The gotify-style plugin the benches build: gotify's plugin template (plugin.go importing
// github.com/gotify/plugin-api and gin), vendoring Debian's gin 1.8.1 and its dependencies
// (golang-github-gin-gonic-gin-dev, under /usr/share/gocode, which ./scripts/test installs).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const GOCODE = '/usr/share/gocode';
const docker = (...args) => execFileSync('docker', args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).toString();

/**
 * The plugin in dir: plugin.go, a go.mod whose requirements match vendor/, and vendor/ from
 * Debian's sources, listed with the go of amd64Image (a plugforge linux-amd64 builder image).
 */
export function makePlugin(dir, amd64Image) {
  const list = docker(
    'run',
    '--rm',
    '--network',
    'none',
    '-v',
    `${GOCODE}:/gopath:ro`,
    '-e',
    'GO111MODULE=off',
    '-e',
    'GOPATH=/gopath',
    '-e',
    'GOCACHE=/tmp/gocache',
    amd64Image,
    'go',
    'list',
    '-deps',
    '-f',
    '{{if not .Standard}}{{.ImportPath}}{{end}}',
    'github.com/gin-gonic/gin',
  );
  const modules = new Map();
  for (const pkg of list
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)) {
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
  writeFileSync(
    path.join(dir, 'vendor/modules.txt'),
    sorted.map(([m, e]) => `# ${m} ${e.version}\n## explicit${e.go ? `; go ${e.go}` : ''}\n${e.packages.sort().join('\n')}\n`).join(''),
  );
  writeFileSync(
    path.join(dir, 'go.mod'),
    `module github.com/example/gotify-gin-plugin\n\ngo 1.22\n\nrequire (\n${sorted.map(([m, e]) => `\t${m} ${e.version}\n`).join('')})\n`,
  );
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
export function pluginSource(edit) {
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
