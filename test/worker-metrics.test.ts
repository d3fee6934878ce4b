import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { TARGETS } from '../src/contract/targets.js';
import { requireRedis, testConfig } from './support/env.js';
import { FakeRuntime, fakeElf } from '../src/runtime/fake-runtime.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { fakeImages } from './support/fixtures.js';

/**
 * A worker-only process (`plugforge worker`) serves its own /metrics when
 * PLUGFORGE_WORKER_METRICS_PORT is set: the counts of the targets it built, which the API
 * process never sees. Real Redis and BullMQ, API and worker as separate services, a
 * scripted runtime.
 */
const runtime = new FakeRuntime((spec) => ({ artifact: fakeElf(TARGETS[spec.target].elfClass, TARGETS[spec.target].elfMachine) }));
const images = fakeImages();

let api: RunningService;
let worker: RunningService;
let client: ApiClient;
let metricsUrl: string;

beforeAll(async () => {
  (await requireRedis()).disconnect();
  const config = await testConfig();
  worker = await startService('worker', { ...config, workerMetricsPort: 0 }, { runtime, images });
  // The same variable on an API process opens nothing: its metrics are at the API's /metrics.
  api = await startService('api', { ...config, workerMetricsPort: 0 });
  client = new ApiClient(`http://127.0.0.1:${api.port}`);
  metricsUrl = `http://127.0.0.1:${worker.metricsPort}`;
});

afterAll(async () => {
  await api?.stop();
  await worker?.stop();
});

describe('metrics of a worker-only process', () => {
  it('serves the targets it finished at its own /metrics, and /healthz', async () => {
    expect(worker.metricsPort).toBeGreaterThan(0);
    expect(api.metricsPort).toBeUndefined();
    const res = await client.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64,linux-arm64');
    expect(res.status, res.text).toBe(202);
    expect((await client.waitFor(res.body.id, undefined, 30_000)).status).toBe('succeeded');

    const metrics = await fetch(`${metricsUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await metrics.text();
    for (const t of ['linux-amd64', 'linux-arm64'])
      expect(text).toContain(`plugforge_targets_finished_total{status="succeeded",target="${t}"} 1`);
    expect(text).toMatch(/plugforge_target_duration_seconds_count\{target="linux-amd64"\} 1/);
    expect(text).toContain('plugforge_process_resident_memory_bytes');
    // The API process built nothing, and says so.
    expect((await client.get('/metrics')).text).not.toContain('plugforge_targets_finished_total{');

    expect((await fetch(`${metricsUrl}/healthz`)).status).toBe(200);
    const other = await fetch(`${metricsUrl}/v1/builds`);
    expect(other.status).toBe(404);
    expect(((await other.json()) as any).error.code).toBe('not_found');
  });
});
