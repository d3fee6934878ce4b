import { describe, expect, it } from 'vitest';
import { LABELS } from '../src/runtime/build-spec.js';
import { isOrphan, type SweepingWorker } from '../src/worker/build-worker.js';

/** Which containers the worker's periodic sweep removes (BuildWorker.sweep decides with isOrphan). */
const self: SweepingWorker = { id: 'me', live: new Set(['me', 'other']), jobs: new Set(['running-job']), checking: false };
const labels = (worker: string, job?: string) => ({ [LABELS.worker]: worker, ...(job ? { [LABELS.job]: job } : {}) });

describe('the orphan sweep', () => {
  it("removes build containers of workers that are gone and this worker's own of jobs it no longer runs", () => {
    expect(isOrphan(labels('gone', 'running-job'), 'build', self)).toBe(true);
    expect(isOrphan(labels('other', 'any-job'), 'build', self)).toBe(false);
    expect(isOrphan(labels('me', 'running-job'), 'build', self)).toBe(false);
    expect(isOrphan(labels('me', 'finished-job'), 'build', self)).toBe(true);
  });

  it("keeps a check container of a job this worker runs (an image job's toolchain fetch), while no capability check runs", () => {
    // Removed mid-fetch, the image job failed with "no such container" instead of the fetch's answer.
    expect(isOrphan(labels('me', 'running-job'), 'check', self)).toBe(false);
    expect(isOrphan(labels('me', 'finished-job'), 'check', self)).toBe(true);
  });

  it("removes this worker's capability-check containers only when no check runs, and any of a worker that is gone", () => {
    expect(isOrphan(labels('me'), 'check', self)).toBe(true);
    expect(isOrphan(labels('me'), 'check', { ...self, checking: true })).toBe(false);
    expect(isOrphan(labels('other'), 'check', self)).toBe(false);
    expect(isOrphan(labels('gone'), 'check', { ...self, checking: true })).toBe(true);
  });
});
