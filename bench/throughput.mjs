#!/usr/bin/env node
// How many targets a plugforge installation builds per minute when builds queue up, and
// what each costs in Redis: the figures docs/deployment.md sizes a fleet with.
//
//   node bench/throughput.mjs [--builds 24] [--targets linux-amd64] [--url http://localhost:8080]
//                             [--redis redis://127.0.0.1:6379/0] [--cores N] [--runs 3]
//
// Each run submits --builds builds of examples/hello at once (each a one-line edit of its
// own, so none is reused), waits for all, and prints: the wall time from the first
// submission to the last build's end, targets per minute, targets per minute per core of
// the worker machine (--cores, default this machine's: run it on the worker's machine),
// and the median of each phase of a target (build documents' `phases`). The warm-up build
// before the runs fills the build caches, so the runs measure warm builds.
//
// --redis (the installation's Redis, and its database): the build record, log stream and
// queue job of one finished build are measured with MEMORY USAGE, and used_memory before and
// after the last run, divided by its builds.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  options: {
    builds: { type: 'string', default: '24' },
    targets: { type: 'string', default: 'linux-amd64' },
    url: { type: 'string', default: process.env.PLUGFORGE_URL ?? 'http://localhost:8080' },
    redis: { type: 'string' },
    cores: { type: 'string', default: String(os.cpus().length) },
    runs: { type: 'string', default: '3' },
    go: { type: 'string', default: '1.22' },
  },
});
const builds = Number(values.builds);
const cores = Number(values.cores);
const targetCount = values.targets.split(',').length;
const work = mkdtempSync(path.join(os.tmpdir(), 'plugforge-throughput-'));
cpSync('examples/hello', work, { recursive: true });
let edits = 0;

function editedSource() {
  writeFileSync(path.join(work, 'bench_edit.go'), `package main\n\n// edit ${++edits} ${process.pid} ${Date.now()}\n`);
  return execFileSync('tar', ['-C', work, '-czf', '-', '.']);
}

async function submit() {
  const res = await fetch(`${values.url}/v1/builds?go=${values.go}&targets=${values.targets}`, {
    method: 'POST',
    body: editedSource(),
    headers: { 'Content-Type': 'application/gzip' },
  });
  const doc = await res.json();
  if (res.status !== 202) throw new Error(`submission refused (${res.status}): ${JSON.stringify(doc)}`);
  return doc.id;
}

async function finished(id) {
  for (;;) {
    const d = await (await fetch(`${values.url}/v1/builds/${id}`)).json();
    if (['succeeded', 'failed', 'canceled'].includes(d.status)) {
      if (d.status !== 'succeeded') throw new Error(`build ${id} ${d.status}: ${JSON.stringify(d.targets)}`);
      return d;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function oneRun() {
  const started = performance.now();
  const ids = [];
  for (let i = 0; i < builds; i++) ids.push(await submit());
  const docs = await Promise.all(ids.map(finished));
  const seconds = (performance.now() - started) / 1000;
  const phases = {};
  for (const d of docs)
    for (const t of Object.values(d.targets)) for (const [p, ms] of Object.entries(t.phases ?? {})) (phases[p] ??= []).push(ms);
  return {
    seconds,
    perMinute: (builds * targetCount * 60) / seconds,
    phases: Object.fromEntries(Object.entries(phases).map(([p, xs]) => [p, median(xs)])),
    ids,
  };
}

async function redisFigures(redis, id, memoryBefore) {
  const prefix = (await redis.keys(`*build:${id}`))[0];
  const keys = await redis.keys(`*${id}*`);
  const sizes = {};
  for (const k of keys) sizes[k.replace(id, 'ID')] = Number(await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0'));
  const memoryAfter = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
  return { prefix, sizes, total: Object.values(sizes).reduce((a, b) => a + b, 0), perBuild: (memoryAfter - memoryBefore) / builds };
}

await finished(await submit()); // warm-up: the build caches
const redis = values.redis ? new Redis(values.redis) : undefined;
const results = [];
let memoryBefore = 0;
for (let i = 0; i < Number(values.runs); i++) {
  if (redis && i === Number(values.runs) - 1) memoryBefore = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
  const r = await oneRun();
  results.push(r);
  console.log(
    `run ${i + 1}: ${builds} builds × ${targetCount} target(s) in ${r.seconds.toFixed(1)} s: ${r.perMinute.toFixed(1)} targets/min, ${(r.perMinute / cores).toFixed(1)} per core; phase medians (ms) ${JSON.stringify(r.phases)}`,
  );
}
const perMinute = median(results.map((r) => r.perMinute));
console.log(
  `median of ${results.length} runs: ${perMinute.toFixed(1)} targets/min on ${cores} cores = ${(perMinute / cores).toFixed(1)} targets/min per core (${values.targets}, examples/hello, warm)`,
);
if (redis) {
  const last = results[results.length - 1];
  const f = await redisFigures(redis, last.ids[0], memoryBefore);
  console.log(`Redis, one finished build's keys (MEMORY USAGE, bytes): ${JSON.stringify(f.sizes)}, together ${f.total}`);
  console.log(`Redis used_memory grew by ${Math.round(f.perBuild)} bytes per build over the last run`);
  redis.disconnect();
}
