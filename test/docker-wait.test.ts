import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { DockerRuntime } from '../src/runtime/docker-runtime.js';
import type { ContainerHandle } from '../src/runtime/build-runtime.js';

/**
 * An engine that never answers a wait: dockerd, asked while it shuts down, takes the wait
 * and stops without answering it; its successor knows the container ended (killed with the
 * engine). A stand-in for dockerode's container (only what wait uses), since a real engine
 * cannot be made to drop a wait on demand; test/faults-engine.test.ts restarts a real one.
 */
function engineThatDropsWaits(states: { Running: boolean; Status: string; ExitCode: number }[]): {
  docker: Docker;
  inspected: () => number;
} {
  let inspects = 0;
  const container = {
    wait: () => new Promise(() => undefined),
    inspect: async () => ({ State: { ...states[Math.min(inspects++, states.length - 1)]!, OOMKilled: false } }),
    kill: async () => undefined,
  };
  return { docker: { getContainer: () => container } as unknown as Docker, inspected: () => inspects };
}

const handle = { id: 'c1', spec: {} } as ContainerHandle;

describe('DockerRuntime.wait', () => {
  it('sees a container that ended even when the engine never answers its wait (the exit, from inspect)', async () => {
    const engine = engineThatDropsWaits([
      { Running: true, Status: 'running', ExitCode: 0 },
      { Running: false, Status: 'exited', ExitCode: 137 },
    ]);
    const started = Date.now();
    const exit = await new DockerRuntime(engine.docker).wait(handle, new AbortController().signal);
    expect(exit).toEqual({ exitCode: 137, oomKilled: false, full: [] });
    expect(engine.inspected()).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('keeps waiting while the container runs, and a deadline still ends the wait', async () => {
    const engine = engineThatDropsWaits([{ Running: true, Status: 'running', ExitCode: 0 }]);
    await expect(new DockerRuntime(engine.docker).wait(handle, AbortSignal.timeout(5_000))).rejects.toThrow();
    expect(engine.inspected()).toBeGreaterThanOrEqual(2);
  });
});
