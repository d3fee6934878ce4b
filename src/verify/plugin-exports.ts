import { definedDynamicSymbols } from './package-fingerprints.js';

/**
 * The symbols a host looks up in a plugin (plugin.Lookup), checked without running the
 * plugin: each is a package-level function or variable of the plugin's main package, which
 * a plugin exports in its dynamic symbol table as `<plugin path>.<name>`; the plugin path
 * is the import path of the package built (plugforge builds `.`, the module's root, so the
 * module path). Read from the stored artifact, nothing the plugin prints can change the
 * answer (docs/architecture.md, "Three levels of proof").
 */
export function missingExports(artifact: Buffer, pluginPath: string, symbols: readonly string[]): string[] {
  const prefix = linkerPrefix(pluginPath);
  const found = definedDynamicSymbols(
    artifact,
    symbols.map((s) => `${prefix}.${s}`),
  );
  return symbols.filter((s) => !found.has(`${prefix}.${s}`));
}

/**
 * A package path as the Go linker spells it in symbol names (cmd/internal/objabi's
 * PathToPrefix): control characters, space, '%', '"', bytes from 0x7f, and dots after the
 * last slash, as %xx.
 */
export function linkerPrefix(path: string): string {
  const bytes = Buffer.from(path, 'utf8');
  const slash = bytes.lastIndexOf(0x2f);
  let out = '';
  bytes.forEach((c, i) => {
    const escape = c <= 0x20 || (c === 0x2e && i > slash) || c === 0x25 || c === 0x22 || c >= 0x7f;
    out += escape ? `%${c.toString(16).padStart(2, '0')}` : String.fromCharCode(c);
  });
  return out;
}
