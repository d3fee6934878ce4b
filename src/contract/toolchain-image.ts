import type { ImageTargetId } from './targets.js';

/**
 * What a worker reports of its builder images (queue/worker-registry.ts), which the API lists:
 * plain types shared by images, queue, worker and api.
 */

/** Where a builder image's Go came from; the two can differ in the standard library's package hashes. */
export type GoSource = 'debian' | 'go-release';

/** One builder image that is present on a Docker engine. */
export interface ToolchainImage {
  go: string;
  target: ImageTargetId;
  image: string;
  id: string;
  size: number;
  created: string;
  /** plugforge's image revision label (0 for images plugforge did not build, e.g. gotify/build). */
  revision?: number;
  /** Where its Go came from (org.plugforge.go.source); "unknown" for images plugforge did not build. */
  source?: GoSource | 'unknown';
}
