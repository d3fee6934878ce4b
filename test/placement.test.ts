import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { TARGET_IDS, TARGETS, type ImageTargetId, type TargetId } from '../src/contract/targets.js';
import { requireRedis, testConfig } from './support/env.js';
import { FakeRuntime, fakeElf } from '../src/runtime/fake-runtime.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

/**
 * Workers report which images they have (the registry); a job taken by a worker without
 * its target's image goes to one that has it, attempts kept (real Redis and BullMQ, two
 * workers on scripted runtimes).
 */
let redis: Redis;
let api: RunningService;
const workers: RunningService[] = [];
const imagesOf = (targets: readonly ImageTargetId[]) =>
  targets.map((target) => ({ go: '1.22.12', target, image: `plugforge/build:1.22.12-${target}`, id: 'fake', size: 1, created: '' }));
const script = (spec: { target: TargetId }) => ({
  runMs: 200,
  artifact: fakeElf(TARGETS[spec.target].elfClass, TARGETS[spec.target].elfMachine),
});
const amd64Only = new FakeRuntime(script);
const everything = new FakeRuntime(script);

beforeAll(async () => {
  redis = await requireRedis();
  const config = await testConfig({ PLUGFORGE_WORKER_CONCURRENCY: '4' });
  api = await startService('api', config);
  workers.push(await startService('worker', config, { runtime: amd64Only, images: imagesOf(['linux-amd64']) }));
  workers.push(await startService('worker', config, { runtime: everything, images: imagesOf(TARGET_IDS) }));
});

afterAll(async () => {
  for (const w of workers) await w.stop();
  await api?.stop();
  redis?.disconnect();
});

describe('placement by image', () => {
  it('builds each target on a worker that has its image', async () => {
    const client = new ApiClient(`http://127.0.0.1:${api.port}`);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), `name=placed${i}`)).body.id);
    for (const id of ids) expect((await client.waitFor(id, undefined, 60_000)).status).toBe('succeeded');
    const built = (r: FakeRuntime) => [...r.containers.values()].filter((c) => c.spec.kind === 'build').map((c) => c.spec.target);
    // The worker with linux-amd64 alone built nothing else; the other built every other target.
    expect(new Set(built(amd64Only))).toEqual(new Set(built(amd64Only).length ? ['linux-amd64'] : []));
    expect(
      built(everything)
        .filter((t) => t !== 'linux-amd64')
        .sort(),
    ).toEqual([
      'linux-386',
      'linux-386',
      'linux-386',
      'linux-arm-7',
      'linux-arm-7',
      'linux-arm-7',
      'linux-arm64',
      'linux-arm64',
      'linux-arm64',
    ]);
  });
});
