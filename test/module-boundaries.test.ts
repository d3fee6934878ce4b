import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/env.js';

/**
 * Which folder of src/ may import which (docs/architecture.md, "Folders and what they may
 * import"): the lower layers (runtime, store, queue, archive) know nothing of the processes
 * that use them, and the client shares no code with the server's processes.
 */
const SRC = path.join(REPO_ROOT, 'src');
const FORBIDDEN: Record<string, readonly string[]> = {
  runtime: ['worker', 'api', 'cli', 'client'],
  store: ['worker', 'api', 'cli', 'client'],
  queue: ['worker', 'api', 'cli', 'client'],
  archive: ['worker', 'api', 'cli', 'client'],
  redis: ['worker', 'api', 'cli', 'client'],
  client: ['api', 'worker', 'cli'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** The src/ folder each relative import of `file` lands in ("" for a top-level module such as config.ts). */
function importedFolders(file: string): { spec: string; folder: string }[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/g), ...text.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g)].map((m) => m[1] as string);
  return specs.map((spec) => {
    const rel = path.relative(SRC, path.resolve(path.dirname(file), spec));
    return { spec, folder: rel.includes(path.sep) ? (rel.split(path.sep)[0] ?? '') : '' };
  });
}

describe('module boundaries', () => {
  it('the import scan sees the imports it must judge', () => {
    // A scan that found nothing would pass every rule below.
    const found = importedFolders(path.join(SRC, 'worker', 'image-job.ts')).map((i) => i.folder);
    expect(found).toEqual(expect.arrayContaining(['runtime', 'queue', 'builds', 'images']));
  });

  for (const [folder, forbidden] of Object.entries(FORBIDDEN)) {
    it(`src/${folder} imports nothing from ${forbidden.map((f) => `src/${f}`).join(', ')}`, () => {
      const offences = sourceFiles(path.join(SRC, folder)).flatMap((file) =>
        importedFolders(file)
          .filter((i) => forbidden.includes(i.folder))
          .map((i) => `${path.relative(REPO_ROOT, file)} imports '${i.spec}'`),
      );
      expect(offences).toEqual([]);
    });
  }
});
