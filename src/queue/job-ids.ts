import type { TargetId } from '../contract/targets.js';

/**
 * The BullMQ job id of one step of a build: a target, its dependency phase ("deps") or its
 * image build ("images"). Deterministic, so an enqueue repeated after a crash adds nothing
 * and a cancel finds the job without a lookup.
 */
export function jobIdOf(buildId: string, step: TargetId | 'deps' | 'images'): string {
  return `${buildId}-${step}`;
}
