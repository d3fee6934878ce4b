import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';

/** A tar (gzip'd when asked) of the given files, as a buffer. */
export async function tarOf(files: Record<string, string | Buffer>, options: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) {
    if (name.endsWith('/')) pack.entry({ name, type: 'directory', mode: 0o755 });
    else pack.entry({ name, mode: 0o644 }, typeof content === 'string' ? Buffer.from(content) : content);
  }
  pack.finalize();
  const stream: Readable = options.gzip ? pack.pipe(createGzip()) : (pack as unknown as Readable);
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A stdlib-only gotify-style plugin (exports GetGotifyPluginInfo and NewGotifyPluginInstance). */
export const GOTIFY_PLUGIN: Record<string, string> = {
  'go.mod': 'module example.com/gotify-hello\n\ngo 1.22\n',
  'plugin.go': `package main

import "strings"

// Info is what a gotify-style host reads from the plugin.
type Info struct {
	ModulePath, Name, Version, Author string
}

// GetGotifyPluginInfo describes the plugin.
func GetGotifyPluginInfo() Info {
	return Info{ModulePath: "example.com/gotify-hello", Name: strings.ToUpper("hello"), Version: "1.0.0", Author: "plugforge"}
}

// Plugin is one instance per user.
type Plugin struct{ userID uint }

// Enable starts the plugin.
func (p *Plugin) Enable() error { return nil }

// Disable stops it.
func (p *Plugin) Disable() error { return nil }

// NewGotifyPluginInstance makes an instance for a user.
func NewGotifyPluginInstance(userID uint) interface{} { return &Plugin{userID: userID} }

func main() {}
`,
};
