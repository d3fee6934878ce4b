#!/usr/bin/env node
// The floor under a warm build on this machine: what a four-target build of a small plugin
// would take if nothing but the compiler and the loader ran, and what one container costs
// the Docker engine. It bounds what any plugforge build can reach here.
//
//   node bench/floor.mjs [--runs 5] [--go 1.22.12] [--dir examples/hello] [--repo plugforge/build]
//
// It measures, median of --runs:
// - container: one container of a builder image run to its end (`true`: created, started,
//   waited for, removed), the engine's fixed cost of every container a build starts, in
//   wall seconds and in busy CPU-seconds of the whole machine (/proc/stat);
// - exec: one `docker exec … true` in a running container (the cost of a process started
//   in a container that already runs);
// - floor, 2 at a time: a one-line edit compiled (go build -buildmode=plugin, warm cache)
//   and loaded (the image's prebuilt probe, under the target's loader) for the four
//   targets, in one long-lived container per target made before the clock starts, one
//   `docker exec` per target, as many at once as the machine has cores (one per core: half a worker's default
//   concurrency); nothing else: no upload, no container made, no copy in or out, no sandbox
//   per build;
// - floor, all at once: the same with the four side by side.
// Needs the Docker CLI and the builder images of --go (plugforge images build --go …).
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    go: { type: 'string', default: '1.22.12' },
    dir: { type: 'string', default: 'examples/hello' },
    repo: { type: 'string', default: 'plugforge/build' },
  },
});
const runs = Number(values.runs);
const cores = os.availableParallelism();
const run = promisify(execFile);
const docker = (...args) =>
  execFileSync('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    .toString()
    .trim();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const PROBE = '/usr/local/lib/plugforge/probe/probe';
const TARGETS = [
  { id: 'linux-amd64', env: ['GOARCH=amd64', 'CC=gcc'], loader: [] },
  {
    id: 'linux-arm-7',
    env: ['GOARCH=arm', 'GOARM=7', 'CC=arm-linux-gnueabihf-gcc'],
    loader: ['qemu-arm-static', '-L', '/usr/arm-linux-gnueabihf'],
  },
  { id: 'linux-arm64', env: ['GOARCH=arm64', 'CC=aarch64-linux-gnu-gcc'], loader: ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'] },
  {
    id: 'linux-386',
    env: ['GOARCH=386', 'GO386=sse2', 'CC=i686-linux-gnu-gcc'],
    loader: ['/usr/i686-linux-gnu/lib/ld-linux.so.2', '--library-path', '/usr/i686-linux-gnu/lib'],
  },
];

/** Busy CPU-seconds of the whole machine so far (every core, user + system + irq). */
function busySeconds() {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + steal) / 100;
}

async function measure(work) {
  const cpu = busySeconds();
  const start = performance.now();
  await work();
  return { wall: (performance.now() - start) / 1000, cpu: busySeconds() - cpu };
}

/** Runs `jobs` with at most `width` at once. */
async function limited(jobs, width) {
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) await job();
    }),
  );
}

const image = (t) => `${values.repo}:${values.go}-${t.id}`;
const names = TARGETS.map((t) => `plugforge-floor-${t.id}-${process.pid}`);
let edits = 0;
try {
  for (const [i, t] of TARGETS.entries()) {
    docker(
      'run',
      '-d',
      '--name',
      names[i],
      '--network',
      'none',
      '-w',
      '/src',
      '-e',
      'GOOS=linux',
      ...t.env.flatMap((e) => ['-e', e]),
      '-e',
      'CGO_ENABLED=1',
      '-e',
      'GOCACHE=/cache',
      '-e',
      'HOME=/tmp',
      '-e',
      'GOFLAGS=-buildvcs=false',
      '--entrypoint',
      'sleep',
      image(t),
      'infinity',
    );
    docker('exec', '-u', '0', names[i], 'mkdir', '-p', '/src', '/cache');
    docker('cp', `${values.dir}/.`, `${names[i]}:/src`);
  }
  // The 386 loader needs a kernel that runs 32-bit x86; qemu-i386-static otherwise.
  try {
    docker('exec', names[3], ...TARGETS[3].loader, '/bin/true');
  } catch {
    TARGETS[3].loader = ['qemu-i386-static', '-L', '/usr/i686-linux-gnu'];
  }
  const target = (i) => async () => {
    const t = TARGETS[i];
    const script = `printf 'package main\\n// edit %s\\n' "$1" > floor_edit.go && go build -buildmode=plugin -o /tmp/p.so . && ${[...t.loader, PROBE].join(' ')} /tmp/p.so >/dev/null`;
    await run('docker', ['exec', names[i], 'sh', '-c', script, 'floor', String(edits)]);
  };
  const all = async (width) => {
    edits++;
    await limited(
      TARGETS.map((_, i) => target(i)),
      width,
    );
  };
  await all(TARGETS.length); // warms every cache: the standard library in plugin mode, the probe's pages

  const figures = { container: [], exec: [], paired: [], wide: [] };
  for (let r = 0; r < runs; r++) {
    figures.container.push(
      await measure(() => run('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'true', image(TARGETS[0])])),
    );
    figures.exec.push(await measure(() => run('docker', ['exec', names[0], 'true'])));
    figures.paired.push(await measure(() => all(cores)));
    figures.wide.push(await measure(() => all(TARGETS.length)));
    console.log(
      `run ${r + 1}: container ${figures.container[r].wall.toFixed(2)} s, exec ${figures.exec[r].wall.toFixed(2)} s, floor ${cores} at a time ${figures.paired[r].wall.toFixed(2)} s, all at once ${figures.wide[r].wall.toFixed(2)} s`,
    );
  }
  const line = (label, xs) =>
    console.log(
      `  ${label.padEnd(52)} ${median(xs.map((x) => x.wall)).toFixed(2)} s wall   ${median(xs.map((x) => x.cpu)).toFixed(2)} CPU-s`,
    );
  console.log(`\nmedians of ${runs} runs, ${cores} cores, Go ${values.go}, ${values.dir}:`);
  line('one container run to its end (create, start, remove)', figures.container);
  line('one exec in a running container', figures.exec);
  line(`floor: 4 targets compiled and loaded, ${cores} at a time`, figures.paired);
  line('floor: 4 targets compiled and loaded, all at once', figures.wide);
} finally {
  for (const name of names) await run('docker', ['rm', '-f', name]).catch(() => undefined);
}
