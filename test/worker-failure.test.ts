import { describe, expect, it } from 'vitest';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { classifyFailure, phaseErrorOf } from '../src/worker/failure.js';

/** The one classifier of a job's thrown error (src/worker/failure.ts). */
describe('classifyFailure', () => {
  it('retries while attempts remain, saying which attempt it was', () => {
    const f = classifyFailure(new PlugforgeError('docker_unavailable', 'engine gone', { retryable: true }), 1, 3);
    expect(f.final).toBe(false);
    expect(f.error.code).toBe('docker_unavailable');
    expect(f.recorded).toEqual({ code: 'docker_unavailable', message: 'engine gone (attempt 1 of 3; retrying)', retryable: true });
  });

  it('gives up after the last attempt, keeping whether the error is retryable', () => {
    const f = classifyFailure(new PlugforgeError('store_unavailable', 'store gone'), 3, 3);
    expect(f.final).toBe(true);
    expect(f.recorded).toEqual({ code: 'store_unavailable', message: 'store gone (gave up after 3 attempts)', retryable: false });
  });

  it('takes an error plugforge did not name as an internal, retryable one', () => {
    const f = classifyFailure(new Error('socket hang up'), 2, 2);
    expect(f.error).toMatchObject({ code: 'internal_error', message: 'Unexpected failure: socket hang up', retryable: true, status: 500 });
    expect(f.final).toBe(true);
  });

  it('lets a job kind name its own unexpected errors', () => {
    const f = classifyFailure(new Error('apt failed'), 1, 1, (e) => new PlugforgeError('image_build_failed', (e as Error).message));
    expect(f.error).toMatchObject({ code: 'image_build_failed', message: 'apt failed' });
    expect(f.final).toBe(true);
  });

  it('names the phase in the error each target gets', () => {
    expect(phaseErrorOf('Dependencies', { code: 'module_not_found', message: 'x', retryable: false })).toEqual({
      code: 'module_not_found',
      message: 'Dependencies: x',
      retryable: false,
    });
  });
});
