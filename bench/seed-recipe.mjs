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
// Every plugforge time is the CLI's whole run: pack, upload, build, download, sha256 check;
// each run also prints how much of it came before the server had the build, the build on
// the server, and after.
// Prints each figure, the medians and seed ÷ each. Needs the Docker CLI on the engine the
// worker uses, and a plugforge serving at --url (./scripts/serve).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makePlugin, pluginSource } from './lib/gin-plugin.mjs';

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
const image = (t) => `${values.repo}:${values.go}-${t}`;
const docker = (...args) => execFileSync('docker', args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).toString();
const seconds = (start) => (performance.now() - start) / 1000;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The seed recipe: the template's Makefile, a fresh container per target, everything compiled (-a). */
function seed(dir) {
  const start = performance.now();
  for (const t of TARGETS) {
    docker(
      'run',
      '--rm',
      '--network',
      'none',
      '-u',
      `${process.getuid()}:${process.getgid()}`,
      '-v',
      `${dir}:/proj`,
      '-w',
      '/proj',
      ...t.env.flatMap((e) => ['-e', e]),
      '-e',
      'CGO_ENABLED=1',
      '-e',
      'GOCACHE=/tmp/gocache',
      '-e',
      'HOME=/tmp',
      '-e',
      'GOFLAGS=-mod=vendor',
      image(t.id),
      'go',
      'build',
      '-a',
      '-installsuffix',
      'cgo',
      '-ldflags',
      '-w -s',
      '-buildmode=plugin',
      '-o',
      `build/gin-plugin-${t.id}.so`,
      '.',
    );
  }
  return seconds(start);
}

/**
 * One `plugforge build`: its whole time, and where it went: before the server had the build
 * (start, pack, upload, checks), the build on the server (created to finished, from the
 * build document --json prints) and after (the downloads and their checks).
 */
function plugforge(dir, out) {
  const startedAt = Date.now();
  const start = performance.now();
  const json = execFileSync(
    process.execPath,
    [
      'bin/plugforge.js',
      'build',
      dir,
      '--server',
      values.url,
      '--go',
      values.go,
      '--targets',
      TARGETS.map((t) => t.id).join(','),
      '--host',
      'gotify',
      '--strip',
      '--out',
      out,
      '--quiet',
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 << 20 },
  );
  const total = seconds(start);
  const doc = JSON.parse(json.toString());
  const created = Date.parse(doc.createdAt);
  const finished = Math.max(created, Date.parse(doc.finishedAt ?? doc.createdAt));
  splits.push(
    `before ${((created - startedAt) / 1000).toFixed(2)}, server ${((finished - created) / 1000).toFixed(2)}, after ${((startedAt + total * 1000 - finished) / 1000).toFixed(2)}`,
  );
  return total;
}
/** Where each plugforge figure of the current run went (plugforge()). */
let splits = [];

function dropCaches() {
  const volumes = docker('volume', 'ls', '-q', '--filter', 'name=plugforge-gocache-')
    .split('\n')
    .filter((v) => v.includes(`-${values.go}-`));
  if (volumes.length) docker('volume', 'rm', '-f', ...volumes);
}

/** The compile alone: per target, one container with a warm cache, the edit compiled once more. */
function compileLimit(dir) {
  let total = 0;
  for (const t of TARGETS) {
    const name = `plugforge-bench-limit-${process.pid}-${t.id}`;
    docker(
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'none',
      '-u',
      `${process.getuid()}:${process.getgid()}`,
      '-v',
      `${dir}:/proj`,
      '-w',
      '/proj',
      ...t.env.flatMap((e) => ['-e', e]),
      '-e',
      'CGO_ENABLED=1',
      '-e',
      'GOCACHE=/tmp/gocache',
      '-e',
      'HOME=/tmp',
      '-e',
      'GOFLAGS=-mod=vendor',
      image(t.id),
      'sleep',
      'infinity',
    );
    try {
      const build = () =>
        docker('exec', name, 'go', 'build', '-buildvcs=false', '-buildmode=plugin', '-ldflags=-s -w', '-o', `/tmp/limit-${t.id}.so`, '.');
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
    makePlugin(dir, image('linux-amd64'));
    if (run === 1) {
      const bytes = execFileSync('tar', ['-C', dir, '-czf', '-', '.'], { maxBuffer: 256 << 20 }).length;
      console.log(
        `plugin: ${readdirSync(path.join(dir, 'vendor'), { recursive: true }).length} vendor entries, ${(bytes / 1048576).toFixed(1)} MiB as tar.gz; Go ${values.go}; ${TARGETS.map((t) => t.id).join(', ')}`,
      );
    }
    const out = path.join(root, `out-${run}`);
    splits = [];
    figures.seed.push(seed(dir));
    rmSync(path.join(dir, 'build'), { recursive: true, force: true });
    dropCaches();
    writeFileSync(path.join(dir, 'plugin.go'), pluginSource(`cold-${run}-${Date.now()}`));
    figures.cold.push(plugforge(dir, out));
    writeFileSync(path.join(dir, 'plugin.go'), pluginSource(`edit-${run}-${Date.now()}`));
    figures.edit.push(plugforge(dir, out));
    figures.same.push(plugforge(dir, out));
    figures.limit.push(compileLimit(dir));
    console.log(
      `run ${run}: ${Object.entries(figures)
        .map(([k, v]) => `${k} ${v.at(-1).toFixed(2)} s`)
        .join(', ')}`,
    );
    console.log(`  where plugforge's time went (s): cold ${splits[0]}; edit ${splits[1]}; same ${splits[2]}`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
const m = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, median(v)]));
console.log(`\nmedians of ${runs} run(s):`);
console.log(`  seed recipe (3 targets, -a, one after the other)  ${m.seed.toFixed(2)} s   1`);
for (const [k, label] of [
  ['cold', 'plugforge cold (build caches dropped)'],
  ['edit', 'plugforge warm, a one-line edit'],
  ['same', 'plugforge, the identical source again'],
]) {
  console.log(`  ${label.padEnd(49)} ${m[k].toFixed(2)} s   seed ÷ this ${(m.seed / m[k]).toFixed(1)}`);
}
console.log(`  compile-only limit of the edit (3 targets)        ${m.limit.toFixed(2)} s   edit ÷ limit ${(m.edit / m.limit).toFixed(2)}`);
