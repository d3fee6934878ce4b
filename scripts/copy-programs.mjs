// Part of `npm run build`: the programs plugforge runs elsewhere (Redis's .lua scripts, the
// containers' .sh scripts, the loading probe's .go source) into dist/, each at its place
// beside its compiled module, where that module reads it (new URL('./…', import.meta.url)).
// Links are followed: src/verify/probe/main.go is images/linux-amd64/probe.go.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';

const PROGRAMS = /\.(lua|sh|go)$/;
for (const file of readdirSync('src', { recursive: true, encoding: 'utf8' }).filter((f) => PROGRAMS.test(f))) {
  mkdirSync(path.join('dist', path.dirname(file)), { recursive: true });
  cpSync(path.join('src', file), path.join('dist', file), { dereference: true });
}
