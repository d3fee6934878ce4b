import { z } from 'zod';
import { TARGET_IDS } from '../targets.js';

/** Paths inside a build container. /work is a per-container volume; /cache the Go build cache. */
export const CONTAINER_PATHS = {
  work: '/work',
  src: '/work/src',
  out: '/work/out',
  tmp: '/work/tmp',
  home: '/work/home',
  cache: '/cache',
} as const;

/** The unprivileged user builds run as (the "nonroot" uid of distroless images). */
export const BUILD_UID = 65532;

/**
 * Everything the runtime needs to run one target's build, and nothing it must decide.
 * Produced by plan() from checked data; the runtime executes it as it is.
 */
export const buildSpecSchema = z.object({
  buildId: z.string().regex(/^[a-z0-9]+$/),
  jobId: z.string().regex(/^[a-z0-9-]+$/),
  target: z.enum(TARGET_IDS),
  image: z.string().min(1),
  cmd: z.array(z.string()).min(1),
  env: z.array(z.string().regex(/^[A-Z0-9_]+=/)),
  workdir: z.string().startsWith('/'),
  user: z.string().regex(/^\d+:\d+$/),
  artifactPath: z.string().startsWith(CONTAINER_PATHS.out),
  artifactName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
  cacheVolume: z.string().regex(/^plugforge-gocache-[a-z0-9._-]+$/),
  labels: z.record(z.string(), z.string()),
  limits: z.object({
    memoryBytes: z.number().int().positive(),
    nanoCpus: z.number().int().positive(),
    pidsLimit: z.number().int().positive(),
    timeoutMs: z.number().int().positive(),
    maxLogBytes: z.number().int().positive(),
    maxArtifactBytes: z.number().int().positive(),
    tmpfsBytes: z.number().int().positive(),
  }),
});

export type BuildSpec = z.infer<typeof buildSpecSchema>;
