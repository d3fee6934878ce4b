#!/usr/bin/env node
// Wall time of a 4-target build of a small plugin, cold (empty Go build caches) and warm,
// against a running plugforge (./scripts/serve). Prints each run and the medians.
//
//   node bench/build-wall-time.mjs [--runs 3] [--url http://localhost:8080] [--dir examples/hello] [--baseline URL]
//
// --baseline: a second plugforge (another version, on the same Docker engine and images,
// with a PLUGFORGE_QUEUE of its own so that each one's worker builds its own builds),
// measured in turn with the first, run by run; the ratios printed are this one's medians
// over the baseline's.
//
// Every build is a one-line edit of the plugin (a file with a comment of its own), since an
// identical source is not built again (reuse). "Cold" removes the build-cache volumes of the toolchain first (needs the Docker CLI on
// the same engine as the worker): every target then recompiles the standard library.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    url: { type: 'string', default: process.env.PLUGFORGE_URL ?? 'http://localhost:8080' },
    dir: { type: 'string', default: 'examples/hello' },
    go: { type: 'string', default: '1.22' },
    baseline: { type: 'string' },
  },
});
const runs = Number(values.runs);
const work = mkdtempSync(path.join(os.tmpdir(), 'plugforge-bench-'));
cpSync(values.dir, work, { recursive: true });
let edits = 0;

/** The source with a one-line edit of its own: an identical one would be reused, not built. */
function editedSource() {
  writeFileSync(path.join(work, 'bench_edit.go'), `package main\n\n// edit ${++edits} ${process.pid} ${Date.now()}\n`);
  return execFileSync('tar', ['-C', work, '-czf', '-', '.']);
}

async function build(url) {
  const source = editedSource();
  const started = performance.now();
  const res = await fetch(`${url}/v1/builds?go=${values.go}`, {
    method: 'POST',
    body: source,
    headers: { 'Content-Type': 'application/gzip' },
  });
  const doc = await res.json();
  if (res.status !== 202) throw new Error(JSON.stringify(doc));
  for (;;) {
    const d = await (await fetch(`${url}/v1/builds/${doc.id}`)).json();
    if (['succeeded', 'failed', 'canceled'].includes(d.status)) {
      if (d.status !== 'succeeded') throw new Error(`build ${d.id} ${d.status}: ${JSON.stringify(d.targets)}`);
      return {
        seconds: (performance.now() - started) / 1000,
        go: d.go,
        perTarget: Object.fromEntries(Object.entries(d.targets).map(([t, s]) => [t, s.durationMs / 1000])),
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function dropCaches(go) {
  const volumes = execFileSync('docker', ['volume', 'ls', '-q', '--filter', `name=plugforge-gocache-`])
    .toString()
    .split('\n')
    .filter((v) => v.includes(`-${go}-`));
  // A volume in use by another build cannot go; wait for it (up to a minute).
  for (let tries = 0; volumes.length; tries++) {
    try {
      execFileSync('docker', ['volume', 'rm', '-f', ...volumes], { stdio: 'pipe' });
      return;
    } catch (err) {
      if (tries > 60) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const servers = [{ label: 'this', url: values.url, cold: [], warm: [] }];
if (values.baseline) servers.push({ label: 'baseline', url: values.baseline, cold: [], warm: [] });
for (let i = 0; i < runs; i++) {
  for (const server of servers) {
    const first = await build(server.url); // resolves the exact version and makes sure the service answers
    await dropCaches(first.go);
    const c = await build(server.url);
    const w = await build(server.url);
    server.cold.push(c.seconds);
    server.warm.push(w.seconds);
    console.log(
      `run ${i + 1} (${server.label}, ${server.url}): cold ${c.seconds.toFixed(1)} s (per target ${JSON.stringify(c.perTarget)}), warm ${w.seconds.toFixed(1)} s`,
    );
  }
}
for (const { label, cold, warm } of servers) {
  console.log(
    `${label}: 4-target build of ${values.dir}, Go ${values.go}, ${runs} runs: cold median ${median(cold).toFixed(1)} s, warm median ${median(warm).toFixed(1)} s (warm/cold ${(median(warm) / median(cold)).toFixed(2)})`,
  );
}
if (servers.length === 2) {
  const [own, base] = servers;
  console.log(
    `this / baseline: cold ${(median(own.cold) / median(base.cold)).toFixed(2)}, warm ${(median(own.warm) / median(base.warm)).toFixed(2)}`,
  );
}
