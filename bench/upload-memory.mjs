#!/usr/bin/env node
// Resident memory of the API process while uploads stream through it: (a) one large upload,
// (b) many uploads at once. Starts its own `plugforge api` and `plugforge worker` (the API
// resolves the Go version from the workers' reports, so one must run; it builds nothing
// here), samples the API's VmRSS from /proc every 20 ms, and prints baseline, peak and
// growth per run and the medians. bench/memory-probe.mjs, loaded into the API, adds what
// RSS cannot tell apart: the V8 heap in use, `external` memory and its `arrayBuffers`
// (Buffers: socket reads, gunzip output), and the garbage collections of each run.
//
//   npm run build && node bench/upload-memory.mjs [--runs 3] [--size-mb 200] [--concurrent 50] [--concurrent-size-mb 20] [--node-option=--flag …]
//
// --node-option passes a flag to the API's node (repeatable), to see what a V8 setting changes.
//
// Needs Redis (PLUGFORGE_REDIS_URL, default database 10 of the local one) and a Docker
// engine with the Go 1.22 builder images, for the worker. Each upload is a real gzip'd tar
// (random bytes, so nothing compresses) that the server fully inflates, checks and re-packs
// to disk, and then refuses at the end with 400 archive_no_go_mod: its go.mod sits one
// directory down beside a file at the root. So every byte takes the path of an accepted
// upload, but no build is queued and nothing is stored.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'size-mb': { type: 'string', default: '200' },
    concurrent: { type: 'string', default: '50' },
    'concurrent-size-mb': { type: 'string', default: '20' },
    'node-option': { type: 'string', multiple: true, default: [] },
  },
});
const runs = Number(values.runs);
const sizeMb = Number(values['size-mb']);
const concurrent = Number(values.concurrent);
const concurrentSizeMb = Number(values['concurrent-size-mb']);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
if (!existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
  console.error('bench/upload-memory.mjs runs the built service: npm run build first');
  process.exit(2);
}

const work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-upload-bench-'));
const probeLog = path.join(work, 'api-memory.jsonl');
const redisUrl = process.env.PLUGFORGE_REDIS_URL ?? 'redis://127.0.0.1:6379/10';
const queue = `bench-${randomBytes(4).toString('hex')}`;
const children = [];
const stopAll = async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  await rm(work, { recursive: true, force: true });
  // The queue's keys (no build was queued, but the queue leaves its metadata).
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys(`bull:${queue}:*`);
    if (keys.length) await redis.del(...keys);
  } catch {
    // Redis gone: nothing to clean.
  } finally {
    redis.disconnect();
  }
};
process.on('SIGINT', () => stopAll().then(() => process.exit(130)));

/** A tar entry header (ustar), for streaming tars without a library. */
function tarHeader(name, size, type = '0') {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${(946684800).toString(8).padStart(11, '0')}\0`, 136);
  h.write(type, 156);
  h.write('ustar\x0000', 257, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** Writes a .tar.gz: `blob.bin` of `mb` MiB of random bytes at the root, then `module/go.mod`. */
async function makeUpload(file, mb) {
  const goMod = Buffer.from('module example.com/bench\n\ngo 1.22\n');
  const size = mb * 1024 * 1024;
  async function* tarStream() {
    yield tarHeader('blob.bin', size);
    for (let left = size; left > 0; left -= 1024 * 1024) yield randomBytes(Math.min(left, 1024 * 1024));
    yield tarHeader('module/go.mod', goMod.length);
    yield Buffer.concat([goMod, Buffer.alloc(512 - goMod.length)]);
    yield Buffer.alloc(1024);
  }
  await pipeline(tarStream(), createGzip({ level: 1 }), createWriteStream(file));
  return (await stat(file)).size;
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function rssKb(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

/** Samples `pid`'s RSS every 20 ms until stop() is called; resolves to the samples in kB. */
function sampler(pid) {
  const samples = [];
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      samples.push(await rssKb(pid));
      await new Promise((r) => setTimeout(r, 20));
    }
    return samples;
  })();
  return { stop: () => ((stopped = true), done) };
}

function upload(port, file, bytes) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/v1/builds?targets=linux-amd64',
      headers: { 'Content-Type': 'application/gzip', 'Content-Length': String(bytes) },
    });
    req.on('response', (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString() }));
    });
    req.on('error', reject);
    createReadStream(file).pipe(req);
  });
}

const mb = (kb) => (kb / 1024).toFixed(1);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The probe's records (bench/memory-probe.mjs) written between `from` and `to` (ms since the epoch). */
async function probeRecords(from, to) {
  const text = await readFile(probeLog, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((r) => r.t >= from && r.t <= to);
}

const HEAP_FIELDS = ['heapUsed', 'heapTotal', 'external', 'arrayBuffers'];

/** Growth of the heap fields (median of the quiet second → peak of the run, in kB) and the collections of the run. */
function heapDetail(quiet, active) {
  const detail = { gc: {} };
  for (const field of HEAP_FIELDS) {
    const before = median(quiet.filter((r) => field in r).map((r) => r[field]));
    const peak = Math.max(...active.filter((r) => field in r).map((r) => r[field]));
    detail[field] = { baseline: before / 1024, peak: peak / 1024, growth: (peak - before) / 1024 };
  }
  for (const r of active) if (r.gc) detail.gc[r.gc] = (detail.gc[r.gc] ?? 0) + 1;
  return detail;
}

async function measure(label, pid, action) {
  // Baseline: the median of one quiet second before the uploads start.
  const quietFrom = Date.now();
  const quiet = sampler(pid);
  await new Promise((r) => setTimeout(r, 1000));
  const baseline = median(await quiet.stop());
  const activeFrom = Date.now();
  const s = sampler(pid);
  const started = performance.now();
  const results = await action();
  const seconds = (performance.now() - started) / 1000;
  const samples = await s.stop();
  const peak = Math.max(...samples);
  const bad = results.filter((r) => r.status !== 400 || !r.body.includes('archive_no_go_mod'));
  if (bad.length) throw new Error(`${label}: unexpected answers: ${bad.map((r) => `${r.status} ${r.body.slice(0, 200)}`).join('; ')}`);
  // The probe writes every 20 ms: wait for its last record of the run.
  await new Promise((r) => setTimeout(r, 50));
  const detail = heapDetail(await probeRecords(quietFrom, activeFrom), await probeRecords(activeFrom, Date.now()));
  return { baseline, peak, growth: peak - baseline, seconds, detail };
}

/** "heapUsed +w (heapTotal +x), external +y (arrayBuffers +z) MB; 12 scavenge, 1 mark-compact" */
function describeDetail(d) {
  const gc =
    Object.entries(d.gc)
      .map(([kind, n]) => `${n} ${kind}`)
      .join(', ') || 'no collection';
  return `heapUsed +${mb(d.heapUsed.growth)} (heapTotal +${mb(d.heapTotal.growth)}), external +${mb(d.external.growth)} (arrayBuffers +${mb(d.arrayBuffers.growth)}) MB; ${gc}`;
}

try {
  const port = await freePort();
  const env = {
    ...process.env,
    PLUGFORGE_REDIS_URL: redisUrl,
    PLUGFORGE_QUEUE: queue,
    PLUGFORGE_DATA_DIR: path.join(work, 'data'),
    PLUGFORGE_PORT: String(port),
    PLUGFORGE_HOST: '127.0.0.1',
    PLUGFORGE_LOG_LEVEL: 'warn',
    PLUGFORGE_MAX_UPLOAD_MB: String(Math.max(sizeMb, concurrentSizeMb) + 50),
    PLUGFORGE_ARCHIVE_MAX_FILE_MB: String(Math.max(sizeMb, concurrentSizeMb) + 10),
    PLUGFORGE_ARCHIVE_MAX_TOTAL_MB: String(Math.max(sizeMb, concurrentSizeMb) + 10),
    PLUGFORGE_TENANT_MAX_ACTIVE_BUILDS: '0',
  };
  for (const mode of ['worker', 'api']) {
    const nodeArgs = mode === 'api' ? ['--import', path.join(root, 'bench', 'memory-probe.mjs'), ...values['node-option']] : [];
    const childEnv = mode === 'api' ? { ...env, PLUGFORGE_BENCH_MEMORY_LOG: probeLog } : env;
    const child = spawn(process.execPath, [...nodeArgs, path.join(root, 'bin', 'plugforge.js'), mode], {
      env: childEnv,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(child);
  }
  const api = children[1];
  const until = Date.now() + 60_000;
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > until || api.exitCode !== null)
      throw new Error('the API did not become ready within 60 s (needs Redis, and a worker with a Docker engine and the Go 1.22 images)');
    await new Promise((r) => setTimeout(r, 250));
  }

  process.stderr.write(`generating uploads in ${work} …\n`);
  const big = path.join(work, 'big.tar.gz');
  const small = path.join(work, 'small.tar.gz');
  const bigBytes = await makeUpload(big, sizeMb);
  const smallBytes = await makeUpload(small, concurrentSizeMb);
  // Warm-up: the first upload loads code and grows the heap once; that is start-up, not load.
  await upload(port, small, smallBytes);
  const options = values['node-option'].length ? ` (node ${values['node-option'].join(' ')})` : '';
  // Growth within a run is measured from the quiet second before it, which keeps what earlier
  // runs left in the allocator; the peak over this figure shows that part too.
  const warm = await rssKb(api.pid);
  console.log(`API pid ${api.pid}, Node ${process.version}${options}; after start-up and one warm-up upload: RSS ${mb(warm)} MB`);

  const one = [];
  const many = [];
  for (let i = 0; i < runs; i++) {
    const a = await measure('one upload', api.pid, async () => [await upload(port, big, bigBytes)]);
    one.push(a);
    console.log(
      `run ${i + 1} (a) one upload of ${(bigBytes / 1048576).toFixed(0)} MB: baseline ${mb(a.baseline)} MB, peak ${mb(a.peak)} MB, growth ${mb(a.growth)} MB, over warm ${mb(a.peak - warm)} MB (${a.seconds.toFixed(1)} s, ${(bigBytes / 1048576 / a.seconds).toFixed(0)} MB/s)`,
    );
    console.log(`      ${describeDetail(a.detail)}`);
    const b = await measure(`${concurrent} uploads`, api.pid, () =>
      Promise.all(Array.from({ length: concurrent }, () => upload(port, small, smallBytes))),
    );
    many.push(b);
    console.log(
      `run ${i + 1} (b) ${concurrent} uploads of ${(smallBytes / 1048576).toFixed(0)} MB at once: baseline ${mb(b.baseline)} MB, peak ${mb(b.peak)} MB, growth ${mb(b.growth)} MB, over warm ${mb(b.peak - warm)} MB, ${(b.growth / concurrent).toFixed(0)} kB per upload (${b.seconds.toFixed(1)} s)`,
    );
    console.log(`      ${describeDetail(b.detail)}`);
  }
  const summary = (xs) =>
    `baseline ${mb(median(xs.map((x) => x.baseline)))} MB, peak ${mb(median(xs.map((x) => x.peak)))} MB, growth ${mb(median(xs.map((x) => x.growth)))} MB, ` +
    `peak over warm ${mb(median(xs.map((x) => x.peak - warm)))} MB (highest ${mb(Math.max(...xs.map((x) => x.peak - warm)))})`;
  console.log(
    `median of ${runs} runs: (a) one ${sizeMb} MiB upload: ${summary(one)}; (b) ${concurrent} × ${concurrentSizeMb} MiB at once: ${summary(many)}`,
  );
  const heapSummary = (xs) => HEAP_FIELDS.map((f) => `${f} +${mb(median(xs.map((x) => x.detail[f].growth)))}`).join(', ');
  console.log(`median growth of the heap fields, MB: (a) ${heapSummary(one)}; (b) ${heapSummary(many)}`);
  const left = await readdir(path.join(work, 'data', 'blobs'), { recursive: true, withFileTypes: true });
  const files = left.filter((e) => e.isFile()).map((e) => e.name);
  if (files.length) throw new Error(`files left in the data directory: ${files.join(', ')}`);
  console.log('data directory afterwards: no blob, no temporary file');
} finally {
  await stopAll();
}
