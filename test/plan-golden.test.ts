import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { needsModules, type BuildRecord } from '../src/builds/build-document.js';
import { loadConfig } from '../src/config.js';
import { plan, planDependencies, planVerify } from '../src/worker/plan.js';
import { REPO_ROOT } from './support/env.js';
import { sampleRecord } from './support/fixtures.js';

/**
 * The planner's golden files, the way drone tests its compiler: a build record in, every
 * container spec the worker would run for it out (the dependency phase, each target's
 * build, the loading probe), compared with test/golden/plan-<case>.json. A change to what
 * plugforge runs shows as a diff of those files; after checking that the diff is what was
 * meant, PLUGFORGE_UPDATE_GOLDEN=1 rewrites them.
 */
const base = sampleRecord();

const CASES: Record<string, BuildRecord> = {
  plain: base,
  vendored: { ...base, source: { ...base.source, vendored: true, requirements: true } },
  modules: { ...base, source: { ...base.source, requirements: true } },
  'host-matched': {
    ...base,
    targetIds: ['linux-amd64', 'linux-386'],
    source: { ...base.source, vendored: true, requirements: true },
    hostMatch: {
      from: 'binary',
      go: '1.22.12',
      trimpath: false,
      tags: ['netgo'],
      modules: [{ path: 'github.com/gin-gonic/gin', version: 'v1.8.1' }],
      aligned: [],
      notes: [],
      arch: { goarch: '386', go386: 'softfloat' },
    },
  } as BuildRecord,
  exe: { ...base, mode: 'exe', targetIds: ['linux-amd64', 'linux-arm64'] },
};

const config = loadConfig({});
const who = { workerId: 'w1', instanceId: 'i1' };

/** Every spec the worker runs for `record`, in order. The probe runs natively here (loader []). */
function pipelineOf(record: BuildRecord) {
  const steps: unknown[] = [];
  if (needsModules(record)) steps.push(planDependencies(record, config, who));
  for (const target of record.targetIds) {
    const build = plan(record, target, config, who);
    steps.push(build);
    if (record.mode === 'plugin') steps.push(planVerify(build, ['Upper'], { argv: [], how: 'natively' }));
  }
  return steps;
}

describe('the planner, against its golden files', () => {
  for (const [name, record] of Object.entries(CASES)) {
    it(`${name} build`, () => {
      const file = path.join(REPO_ROOT, 'test', 'golden', `plan-${name}.json`);
      const actual = `${JSON.stringify(pipelineOf(record), null, 2)}\n`;
      if (process.env.PLUGFORGE_UPDATE_GOLDEN === '1') writeFileSync(file, actual);
      expect(actual).toBe(readFileSync(file, 'utf8'));
    });
  }
});
