import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ESLint } from 'eslint';
import * as prettier from 'prettier';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/env.js';

/**
 * Each part of `npm run lint` (docs/testing.md, "Lint") fails on a small bad input: a
 * check that could not fail would pass every change.
 */
const execFileP = promisify(execFile);
const DEPCRUISE = path.join(REPO_ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

/** A command's exit status and what it printed; a non-zero exit is an answer, not a throw. */
async function run(cwd: string, file: string, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [file, ...args], { cwd });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

let dir: string;

/** A small repository with the real .dependency-cruiser.cjs and the given files. */
function fixture(name: string, files: Record<string, string>): string {
  const root = path.join(dir, name);
  mkdirSync(root);
  copyFileSync(path.join(REPO_ROOT, '.dependency-cruiser.cjs'), path.join(root, '.dependency-cruiser.cjs'));
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'node_modules'));
  writeFileSync(
    path.join(root, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }),
  );
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
  return root;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'plugforge-lint-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('npm run lint', () => {
  it("dependency-cruiser sees the repository's imports as the rules must judge them", async () => {
    // A cruise that resolved nothing would pass every rule: image-job.ts's imports land on files.
    const { code, out } = await run(REPO_ROOT, DEPCRUISE, ['src', 'web', '--config', '.dependency-cruiser.cjs', '--output-type', 'json']);
    expect(code).toBe(0);
    const modules = (JSON.parse(out) as { modules: { source: string; dependencies: { resolved: string }[] }[] }).modules;
    const folders = (source: string) =>
      modules.find((m) => m.source === source)?.dependencies.map((d) => d.resolved.split('/').slice(0, 2).join('/'));
    expect(folders('src/worker/image-job.ts')).toEqual(expect.arrayContaining(['src/runtime', 'src/queue', 'src/builds', 'src/images']));
    expect(folders('web/pack-folder.ts')).toContain('src/client');
  });

  it('dependency-cruiser names the rule an import breaks: against the matrix, a loop between folders, a package reached from web/', async () => {
    const root = fixture('imports', {
      'src/runtime/spec.ts':
        "import { step } from '../worker/step.js';\nimport { elf } from '../verify/elf.js';\nexport const spec = step + elf;\n",
      'src/worker/step.ts': 'export const step = 1;\n',
      'src/verify/elf.ts': "import type { Probe } from '../runtime/probe.js';\nexport const elf: Probe = 2;\n",
      'src/runtime/probe.ts': 'export type Probe = number;\n',
      'src/contract/schemas.ts': "import { z } from 'zod';\nexport const id = z.string();\n",
      'web/app.ts': "import { id } from '../src/contract/schemas.js';\nexport const app = id;\n",
    });
    const { code, out } = await run(root, DEPCRUISE, ['src', 'web', '--config', '.dependency-cruiser.cjs']);
    expect(code).not.toBe(0);
    expect(out).toMatch(/error matrix-runtime: src\/runtime\/spec\.ts → src\/worker\/step\.ts/);
    expect(out).toMatch(/error matrix-verify: src\/verify\/elf\.ts → src\/runtime\/probe\.ts/);
    expect(out).toMatch(/error no-circular-folders: src\/(runtime|verify) →/);
    expect(out).toMatch(/error web-loads-no-package: web\/app\.ts → \S*node_modules\/zod\//);
  });

  it('dependency-cruiser refuses a matrix that misses a folder of src/', async () => {
    const root = fixture('folders', { 'src/gadgets/gadget.ts': 'export const gadget = 1;\n' });
    const { code, out } = await run(root, DEPCRUISE, ['src', '--config', '.dependency-cruiser.cjs']);
    expect(code).not.toBe(0);
    expect(out).toContain('src/gadgets/ is in no layer of the matrix');
  });

  it('eslint reports a recommended rule broken in src/', async () => {
    const eslint = new ESLint({ cwd: REPO_ROOT });
    const [result] = await eslint.lintText('export function parse(text: string): any {\n  return JSON.parse(text);\n}\n', {
      filePath: path.join(REPO_ROOT, 'src', 'lint-fixture.ts'),
    });
    expect(result?.messages.map((m) => m.ruleId)).toContain('@typescript-eslint/no-explicit-any');
    expect(result?.errorCount).toBeGreaterThan(0);
  });

  it("prettier's check fails on a file not formatted as .prettierrc.json says", async () => {
    const file = path.join(REPO_ROOT, 'src', 'lint-fixture.ts');
    const options = { ...(await prettier.resolveConfig(file)), filepath: file };
    expect(options.printWidth).toBe(140);
    expect(await prettier.check('export const greeting = "hello"\n', options)).toBe(false);
    expect(await prettier.check("export const greeting = 'hello';\n", options)).toBe(true);
  });

  it("the layer-table check names the row of architecture.md's table that differs from the matrix", async () => {
    const script = path.join(REPO_ROOT, 'scripts', 'check-layers.mjs');
    expect((await run(REPO_ROOT, script, [])).code).toBe(0);
    const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'architecture.md'), 'utf8');
    const row = '| 3 | `src/host/` | `contract`, `errors`, `shared`, `archive`, `verify` |';
    expect(doc).toContain(row);
    const changed = path.join(dir, 'architecture.md');
    writeFileSync(changed, doc.replace(row, '| 3 | `src/host/` | `contract`, `errors`, `shared`, `archive` |'));
    const { code, out } = await run(REPO_ROOT, script, ['--doc', changed]);
    expect(code).toBe(1);
    expect(out).toContain('(the row of `src/host/`) differs');
  });
});
