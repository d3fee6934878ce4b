import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let revision: string | undefined;

/**
 * plugforge's own build revision: the sha256 of its code as this process runs it (every
 * .js and .ts file, and every program it runs elsewhere: .lua, .sh, .go, under the folder
 * this module was loaded from, src/ or dist/, by path and content), so that any change to
 * what plugforge runs or how it plans a build changes it. Part of a build's reuse key
 * (docs/decisions.md, "The same build is never run twice"). Computed once per process.
 */
export function codeRevision(): string {
  if (revision) return revision;
  const root = path.dirname(fileURLToPath(import.meta.url));
  const hash = createHash('sha256');
  const counted = (f: string) => /\.(js|ts|lua|sh|go)$/.test(f) && !f.endsWith('.d.ts') && !f.endsWith('.map');
  const files = (readdirSync(root, { recursive: true }) as string[]).filter(counted).sort();
  for (const f of files)
    hash
      .update(`${f.split(path.sep).join('/')}\0`)
      .update(readFileSync(path.join(root, f)))
      .update('\0');
  revision = hash.digest('hex').slice(0, 16);
  return revision;
}

/** The version in plugforge's package.json (one folder above src/ and dist/). */
const PACKAGE_JSON = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json');
export const PACKAGE_VERSION: string = (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;
