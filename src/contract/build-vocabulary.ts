/**
 * The words a build document is made of, shared by the API's schemas, the server's records,
 * the client and the web page: plain constants, no imports, so the browser can load this file.
 *
 * Where a target's time went, in milliseconds, each phase summed over the containers of its
 * pipeline: waiting in the queue (enqueued to taken), the build cache made ready, the
 * container created, the source put in, the compile (start to exit), the artifact taken
 * out and stored with its ELF check, the load check (host fingerprints and the probe's
 * container), and the containers removed. See docs/architecture.md "Where the time goes".
 */
export const PHASES = ['queueWait', 'prepare', 'create', 'sourceIn', 'compile', 'artifactOut', 'loadCheck', 'teardown'] as const;
export type Phase = (typeof PHASES)[number];
export type PhaseTimings = Partial<Record<Phase, number>>;

/** `preparing`: the builder images of the build's Go release are being made (images on demand). */
export const BUILD_STATUSES = ['preparing', 'queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type BuildStatus = (typeof BUILD_STATUSES)[number];
/** The statuses a build or a target does not leave. */
export const TERMINAL: ReadonlySet<BuildStatus> = new Set(['succeeded', 'failed', 'canceled']);

export type BuildMode = 'plugin' | 'exe';
/** The host a plugin is built for (its profile), in the order the web page offers them. */
export const HOST_PROFILES = ['generic', 'gotify', 'flow'] as const;
export type HostProfile = (typeof HOST_PROFILES)[number];
