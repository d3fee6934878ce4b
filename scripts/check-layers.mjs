#!/usr/bin/env node
// docs/architecture.md's layer table is made from the import matrix in .dependency-cruiser.cjs,
// the one place the matrix is written; this checks the table is current (part of `npm run lint`).
//
//   node scripts/check-layers.mjs            fails, naming each row that differs, when it is not
//   node scripts/check-layers.mjs --write    rewrites the table from the matrix
//   --doc FILE, --config FILE                another document or matrix (the lint tests use them)
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BEGIN = '<!-- layer table: made by `node scripts/check-layers.mjs --write` from .dependency-cruiser.cjs -->';
const END = '<!-- end of layer table -->';

/** How the table names a node of the matrix. */
function label(node) {
  if (node === 'shared') return 'the modules at the top of `src/` (`shared`)';
  if (node === 'config') return '`src/config.ts` (`config`)';
  if (node === 'web') return '`web/` (`web`)';
  return `\`src/${node}/\``;
}

/** The table's lines: a header, then one row per node, lowest layer first. */
export function tableLines(layers) {
  const rows = layers.flatMap((nodes, k) =>
    Object.entries(nodes).map(([node, allowed]) => `| ${k} | ${label(node)} | ${allowed.map((a) => `\`${a}\``).join(', ') || 'nothing'} |`),
  );
  return ['| layer | folder | may import (besides itself) |', '|---|---|---|', ...rows];
}

/** A row's name for a message: its folder cell, or "the header". */
function rowName(line) {
  const cells = line.split('|').map((c) => c.trim());
  return /^\d+$/.test(cells[1] ?? '') ? `the row of ${cells[2]}` : 'the header';
}

/** What differs between the document's table and the matrix's, one message per row. */
export function tableFaults(doc, layers) {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin < 0 || end < begin) return [`the layer table's markers are missing (${BEGIN} … ${END})`];
  const have = doc
    .slice(begin + BEGIN.length, end)
    .split('\n')
    .filter((line) => line.trim() !== '');
  const want = tableLines(layers);
  const faults = [];
  for (let k = 0; k < Math.max(have.length, want.length); k++) {
    if (have[k] === want[k]) continue;
    const row = `line ${k + 1} of the table (${rowName(want[k] ?? have[k])})`;
    if (want[k] === undefined) faults.push(`${row} is not in the matrix: ${have[k]}`);
    else if (have[k] === undefined) faults.push(`${row} is missing; the matrix says: ${want[k]}`);
    else faults.push(`${row} differs:\n    the table says:  ${have[k]}\n    the matrix says: ${want[k]}`);
  }
  return faults;
}

/** The document with its table made from the matrix. */
function rewritten(doc, layers) {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`the layer table's markers are missing (${BEGIN} … ${END})`);
  return `${doc.slice(0, begin + BEGIN.length)}\n${tableLines(layers).join('\n')}\n${doc.slice(end)}`;
}

function main() {
  const { values } = parseArgs({
    options: {
      write: { type: 'boolean', default: false },
      doc: { type: 'string', default: path.join(ROOT, 'docs', 'architecture.md') },
      config: { type: 'string', default: path.join(ROOT, '.dependency-cruiser.cjs') },
    },
  });
  const layers = createRequire(import.meta.url)(path.resolve(values.config)).layers;
  const doc = readFileSync(values.doc, 'utf8');
  if (values.write) {
    writeFileSync(values.doc, rewritten(doc, layers));
    return;
  }
  const faults = tableFaults(doc, layers);
  if (faults.length === 0) return;
  const shown = path.relative(process.cwd(), values.doc);
  console.error(`${shown.startsWith('..') ? values.doc : shown}: the layer table is not the matrix of .dependency-cruiser.cjs:`);
  for (const fault of faults) console.error(`  ${fault}`);
  console.error('Run `node scripts/check-layers.mjs --write` after changing the matrix.');
  process.exitCode = 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
