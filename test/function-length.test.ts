import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/env.js';

/**
 * No function in src/ runs longer than about 60 lines without a reason written above it
 * (docs/architecture.md, "How the code reads"): a comment in the lines just above that
 * says "Longer than 60 lines:" and why. Route tables count by their handlers, which are
 * functions of their own.
 */
const MAX_LINES = 60;
const REASON = /Longer than 60 lines:/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

interface LongFunction {
  where: string;
  lines: number;
  reasoned: boolean;
}

function longFunctions(file: string, text = readFileSync(file, 'utf8')): LongFunction[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: LongFunction[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.end).line;
      // Lines inside nested functions (route handlers) count for those, not here.
      let nested = 0;
      const skip = (n: ts.Node) => {
        if (n !== node && ts.isFunctionLike(n) && 'body' in n && n.body) {
          nested += source.getLineAndCharacterOfPosition(n.end).line - source.getLineAndCharacterOfPosition(n.getStart(source)).line + 1;
          return;
        }
        ts.forEachChild(n, skip);
      };
      ts.forEachChild(node, skip);
      const lines = last - first + 1 - nested;
      if (lines > MAX_LINES) {
        const comment = text.slice(0, node.getStart(source)).split('\n').slice(-12).join('\n');
        const name = (node as { name?: ts.Node }).name?.getText(source) ?? '(function)';
        found.push({ where: `${path.relative(REPO_ROOT, file)}:${first + 1} ${name}`, lines, reasoned: REASON.test(comment) });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('function length', () => {
  const all = sourceFiles(path.join(REPO_ROOT, 'src')).flatMap((f) => longFunctions(f));

  it('the scan finds a long function, counts nested handlers apart, and reads a reason above it', () => {
    // A scan that found nothing would pass the rule below.
    const body = (n: number) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
    const file = path.join(REPO_ROOT, 'src', 'example.ts');
    expect(longFunctions(file, `export function long() {\n${body(70)}\n}\n`)).toMatchObject([
      { where: 'src/example.ts:1 long', lines: 72, reasoned: false },
    ]);
    expect(
      longFunctions(file, `export function table() {\n  go(() => {\n${body(40)}\n  });\n  go(() => {\n${body(40)}\n  });\n}\n`),
    ).toEqual([]);
    expect(longFunctions(file, `// Longer than 60 lines: one line per setting.\nexport function long() {\n${body(70)}\n}\n`)).toMatchObject(
      [{ reasoned: true }],
    );
  });

  it(`no function in src/ is longer than ${MAX_LINES} lines without a written reason`, () => {
    expect(all.filter((f) => !f.reasoned).map((f) => `${f.where}: ${f.lines} lines`)).toEqual([]);
  });
});
