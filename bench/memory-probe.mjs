// Loaded into the API process by bench/upload-memory.mjs (node --import): writes what
// /proc cannot tell apart, one JSON line every 20 ms to PLUGFORGE_BENCH_MEMORY_LOG: the V8
// heap in use, memory outside it (`external`, of which `arrayBuffers` holds Buffers), and
// each garbage collection (kind and how long it took). Nothing else in plugforge loads it.
import { closeSync, openSync, writeSync } from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';

const file = process.env.PLUGFORGE_BENCH_MEMORY_LOG;
if (file) {
  const fd = openSync(file, 'a');
  const write = (record) => writeSync(fd, `${JSON.stringify(record)}\n`);
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    write({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers });
  }, 20);
  timer.unref();
  const kinds = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak-callbacks',
  };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries())
      write({ t: Date.now(), gc: kinds[entry.detail?.kind] ?? 'other', ms: Number(entry.duration.toFixed(2)) });
  }).observe({ entryTypes: ['gc'] });
  process.once('exit', () => closeSync(fd));
}
