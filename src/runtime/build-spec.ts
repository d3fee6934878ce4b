import { z } from 'zod';

/** Paths inside a build container. /work is a per-container sized tmpfs volume; /cache the Go build cache. */
export const CONTAINER_PATHS = {
  work: '/work',
  src: '/work/src',
  out: '/work/out',
  tmp: '/work/tmp',
  home: '/work/home',
  cache: '/cache',
  /** The module cache: read-only in builds, written only by the dependency phase. */
  modCache: '/go/pkg/mod',
  /** A file:// module proxy directory, mounted read-only for the dependency phase. */
  proxy: '/proxy',
} as const;

/** Container labels. Every container plugforge makes (and every disk volume) carries them so orphans can be found and swept. */
export const LABELS = {
  role: 'org.plugforge.role',
  build: 'org.plugforge.build',
  target: 'org.plugforge.target',
  job: 'org.plugforge.job',
  worker: 'org.plugforge.worker',
  /** The plugforge installation (one Redis): sweepers leave other installations' containers alone. */
  instance: 'org.plugforge.instance',
  /** Which step of its job a container runs: dependencies, build or verify. */
  step: 'org.plugforge.step',
} as const;

/** The unprivileged user builds run as (the "nonroot" uid of distroless images). */
export const BUILD_UID = 65532;

/**
 * Everything the runtime needs to run one container, and nothing it must decide: the
 * container facts of a pipeline step (src/worker/steps.ts), which says what the container
 * is for. Produced by the planner from checked data; the runtime executes it as it is.
 */
export const containerSpecSchema = z.object({
  /** The job the container belongs to (its name and the sweep's key). */
  jobId: z.string().regex(/^[a-z0-9-]+$/),
  image: z.string().min(1),
  cmd: z.array(z.string()).min(1),
  env: z.array(z.string().regex(/^[A-Z0-9_]+=/)),
  workdir: z.string().startsWith('/'),
  user: z.string().regex(/^\d+:\d+$/),
  /**
   * The Go build cache (GOCACHE), mounted read-write at /cache: a target build's, one per
   * tenant, toolchain and target. Absent: no build cache at all (the dependency step, whose
   * GOCACHE is scratch, and the loading probe, which runs untrusted code and keeps nothing).
   */
  cacheVolume: z
    .string()
    .regex(/^plugforge-gocache-[a-z0-9._-]+$/)
    .optional(),
  /** none for builds; bridge only for a dependency phase that must reach an http(s) proxy. */
  network: z.enum(['none', 'bridge']),
  /**
   * The tenant's module cache (GOMODCACHE), one volume per tenant (docs/decisions.md, "A
   * module cache per tenant"): writable for the dependency step, which also keeps it within
   * `maxBytes`; read-only for builds.
   */
  moduleCache: z
    .object({
      volume: z.string().regex(/^plugforge-gomod[a-z0-9._-]*$/),
      readOnly: z.boolean(),
      maxBytes: z.number().int().positive().optional(),
    })
    .optional(),
  /** Host directory of a file:// proxy (from configuration only), mounted read-only. */
  proxyDir: z
    .string()
    .regex(/^\/[^\0]*$/)
    .optional(),
  labels: z.record(z.string(), z.string()),
  /** The engine runtime to run it under (configuration only, e.g. runsc); absent: the engine's default. */
  runtime: z
    .string()
    .regex(/^[a-z0-9_-]+$/)
    .optional(),
  limits: z.object({
    memoryBytes: z.number().int().positive(),
    nanoCpus: z.number().int().positive(),
    pidsLimit: z.number().int().positive(),
    timeoutMs: z.number().int().positive(),
    maxLogBytes: z.number().int().positive(),
    maxArtifactBytes: z.number().int().positive(),
    /** Sizes of /work and /tmp (tmpfs volumes: a container cannot write past them). */
    workBytes: z.number().int().positive(),
    tmpfsBytes: z.number().int().positive(),
    /** Bound of the build cache volume, kept by trimming before a build. */
    cacheBytes: z.number().int().positive(),
  }),
});

export type ContainerSpec = z.infer<typeof containerSpecSchema>;
