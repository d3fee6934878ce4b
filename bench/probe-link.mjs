#!/usr/bin/env node
// What keeping the loading probe saves a one-line edit of a plugin built against a host that
// links gin (a host description: the probe then imports every package the plugin shares with
// the host, and is linked in the build's container, src/worker/plan.ts PLUGIN_SCRIPT).
//
//   node bench/probe-link.mjs [--runs 3] [--go 1.22.12] [--repo plugforge/build]
//
// Per target (linux-amd64, linux-arm-7, linux-arm64), in one warm builder container with the
// gotify-style gin plugin (bench/lib/gin-plugin.mjs) and plugforge's own probe package
// importing gin, median of --runs, each a `docker exec` of the probe's go build:
// - linked: no probe kept, go links it (what every build did before the probe was kept);
// - kept: the probe of the build before copied back first, as the plugin script does; go
//   finds its build ID up to date and links nothing.
// Prints both, their sums over the targets and linked ÷ kept. Needs the Docker CLI, the
// builder images of --go, Debian's gin sources (./scripts/test installs them) and dist/
// (npm run build: the probe's source is plugforge's own).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PROBE_MAIN_GO } from '../dist/verify/load-probe.js';
import { makePlugin } from './lib/gin-plugin.mjs';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    go: { type: 'string', default: '1.22.12' },
    repo: { type: 'string', default: 'plugforge/build' },
  },
});
const TARGETS = [
  { id: 'linux-amd64', env: ['GOARCH=amd64', 'CC=gcc'] },
  { id: 'linux-arm-7', env: ['GOARCH=arm', 'GOARM=7', 'CC=arm-linux-gnueabihf-gcc'] },
  { id: 'linux-arm64', env: ['GOARCH=arm64', 'CC=aarch64-linux-gnu-gcc'] },
];
const image = (t) => `${values.repo}:${values.go}-${t}`;
const docker = (...args) => execFileSync('docker', args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 }).toString();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const BUILD = 'go build -buildvcs=false -o /tmp/probe ./.plugforge-probe';

function timed(name, script) {
  const start = performance.now();
  docker('exec', name, 'sh', '-c', script);
  return (performance.now() - start) / 1000;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'plugforge-probe-link-'));
const rows = [];
try {
  makePlugin(dir, image('linux-amd64'));
  mkdirSync(path.join(dir, '.plugforge-probe'));
  writeFileSync(path.join(dir, '.plugforge-probe/main.go'), PROBE_MAIN_GO);
  writeFileSync(
    path.join(dir, '.plugforge-probe/imports.go'),
    'package main\n\nimport (\n\t_ "github.com/gin-gonic/gin"\n\t_ "github.com/gotify/plugin-api"\n)\n',
  );
  for (const t of TARGETS) {
    const name = `plugforge-bench-probe-${process.pid}-${t.id}`;
    docker(
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'none',
      '-v',
      `${dir}:/proj:ro`,
      '-w',
      '/proj',
      '-e',
      'GOOS=linux',
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
      timed(name, `${BUILD} && cp /tmp/probe /tmp/kept`);
      const linked = [];
      const kept = [];
      for (let run = 0; run < Number(values.runs); run++) {
        linked.push(timed(name, `rm -f /tmp/probe && ${BUILD}`));
        kept.push(timed(name, `rm -f /tmp/probe && cp /tmp/kept /tmp/probe && ${BUILD} && cmp -s /tmp/kept /tmp/probe`));
      }
      rows.push({ target: t.id, linked: median(linked), kept: median(kept) });
    } finally {
      docker('rm', '-f', name);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`the loading probe of a gin plugin, Go ${values.go}, medians of ${values.runs} run(s), each a docker exec:`);
for (const r of rows) console.log(`  ${r.target.padEnd(12)} linked ${r.linked.toFixed(2)} s   kept ${r.kept.toFixed(2)} s`);
const sum = (k) => rows.reduce((s, r) => s + r[k], 0);
console.log(
  `  all targets  linked ${sum('linked').toFixed(2)} s   kept ${sum('kept').toFixed(2)} s   linked ÷ kept ${(sum('linked') / sum('kept')).toFixed(1)}`,
);
