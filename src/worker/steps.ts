import { z } from 'zod';
import { CONTAINER_PATHS, type ContainerSpec } from '../runtime/build-spec.js';
import type { TargetId } from '../contract/targets.js';

/**
 * The steps the planner (plan.ts) makes of a build, each carrying exactly what it needs:
 * its container (what the runtime runs) and the facts of the step that the worker reads
 * back, so nothing is dug out of a command line or an environment. A build's pipeline is
 * one dependencies step (when it needs modules; a job of its own) and, per target, a build
 * step followed, for plugins, by the verify step of its loading probe.
 */
export type Step = DependencyStep | BuildStep | VerifyStep;

/** Where a step's artifact is in its container, and its name: a plain file name in /work/out, nothing a path could escape with. */
export const artifactPlaceSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
  path: z.string().startsWith(`${CONTAINER_PATHS.out}/`),
});
export type ArtifactPlace = z.infer<typeof artifactPlaceSchema>;

/** `go mod download` of the build's module graph into its tenant's module cache. */
export interface DependencyStep {
  kind: 'dependencies';
  container: ContainerSpec;
  /** The module proxy, as configured (a file:// one is mounted). */
  proxy: string;
}

/** One target's `go build` (for plugins, also of the loading probe). */
export interface BuildStep {
  kind: 'build';
  target: TargetId;
  container: ContainerSpec;
  artifact: ArtifactPlace;
  /** The command as the log shows it: the go build, and how the probe is built. */
  command: string;
  /** Plugins: how the loading probe is built (the host's trimpath and tags). */
  probeSettings?: string;
}

/** The loading probe: the artifact opened by plugin.Open under the target's architecture. */
export interface VerifyStep {
  kind: 'verify';
  target: TargetId;
  container: ContainerSpec;
  artifact: ArtifactPlace;
  /** The symbols the host looks up. */
  symbols: string[];
  /** How the probe host was built, for the log. */
  probeSettings: string;
  /** How the loader runs it ("natively", "qemu-i386-static", …). */
  how: string;
}
