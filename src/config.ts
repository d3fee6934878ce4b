import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ReuseScope } from './builds/build-reuse.js';
import { DEFAULT_MAX_LOG_LINES } from './builds/build-repository.js';
import { ConfigError } from './config-error.js';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { ArchiveLimits } from './archive/archive-limits.js';
import { DEBIAN_GO_MINORS } from './images/go-version.js';
import { raiseGoFloor, requireSafeGoRelease, type GoFloor } from './images/toolchain-floor.js';
import type { GoProxySettings } from './go-proxy.js';
import type { ToolchainFetchConfig } from './images/toolchain-module.js';
import { redactUrls } from './redact-url.js';
import type { BlobStoreConfig } from './store/open-blob-store.js';
import { TARGET_IDS } from './contract/targets.js';

export type { BlobStoreConfig };

const positiveInt = z.coerce.number().int().positive();
const boolFlag = z.enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off']).transform((v) => ['1', 'true', 'yes', 'on'].includes(v));

const sourceUrl = z.url({ protocol: /^https?$/ }).refine((u) => u.includes('{version}'), 'must hold {version}, where the release goes');
const hostSourcesSchema = z.record(
  z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  z.object({ goMod: sourceUrl, goVersion: sourceUrl }).strict(),
);

/**
 * All of plugforge's configuration, from the environment, parsed once at start-up.
 * A wrong value stops start-up with a message naming the variable (see loadConfig).
 */
const envSchema = z.object({
  PLUGFORGE_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  PLUGFORGE_HOST: z.string().min(1).default('0.0.0.0'),
  /** The URL clients use to reach the API; artifact URLs in build documents start with it. */
  PLUGFORGE_PUBLIC_URL: z
    .url()
    .refine(
      (u) => !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(u),
      'must not carry a user or password: it is written into every build document and signed provenance',
    )
    .optional(),
  PLUGFORGE_REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .default('redis://127.0.0.1:6379'),
  PLUGFORGE_DATA_DIR: z.string().min(1).default(path.resolve('.data')),
  PLUGFORGE_DOCKER_HOST: z.string().optional(),
  PLUGFORGE_IMAGE_REPO: z
    .string()
    .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/, 'must be a Docker repository name such as plugforge/build')
    .default('plugforge/build'),
  PLUGFORGE_DEFAULT_GO: z
    .string()
    .regex(/^\d+\.\d+(\.\d+)?$/, 'must be a Go version such as 1.22 or 1.22.12')
    .default('1.22'),
  PLUGFORGE_DEFAULT_TARGETS: z
    .string()
    .default(TARGET_IDS.join(','))
    .refine(
      (v) => v.split(',').every((t) => (TARGET_IDS as readonly string[]).includes(t.trim())),
      `must be a comma list of ${TARGET_IDS.join(', ')}`,
    ),
  /**
   * Two targets per core: a target spends much of its time waiting on the engine (disks,
   * containers, archive copies), and one per core left cores idle between compiles
   * (docs/deployment.md, "What to scale, and when").
   */
  PLUGFORGE_WORKER_CONCURRENCY: positiveInt.default(2 * os.availableParallelism()),
  PLUGFORGE_QUEUE: z
    .string()
    .regex(/^[a-z0-9-]+$/, 'must be lower-case letters, digits and dashes')
    .default('plugforge'),
  /** Wall-clock deadline of one target's build container. */
  PLUGFORGE_BUILD_TIMEOUT_SECONDS: positiveInt.default(600),
  PLUGFORGE_BUILD_MEMORY_MB: positiveInt.default(2048),
  PLUGFORGE_BUILD_CPUS: z.coerce.number().positive().default(2),
  PLUGFORGE_BUILD_PIDS: positiveInt.default(512),
  /** Size of each container's /work (source, output, Go's temp files): a sized tmpfs, counted in the memory limit. */
  PLUGFORGE_WORK_DISK_MB: positiveInt.default(1024),
  /** Size of each container's /tmp: a sized tmpfs, counted in the memory limit. */
  PLUGFORGE_TMP_DISK_MB: positiveInt.default(256),
  /** Bound of each per-tenant Go build cache volume: trimmed (least recently used first) before a build, never failed. */
  PLUGFORGE_CACHE_MAX_MB: positiveInt.default(4096),
  /** Days a per-tenant cache volume may go unused before a worker's sweep removes it; 0: never removed. */
  PLUGFORGE_CACHE_IDLE_DAYS: z.coerce.number().min(0).default(30),
  PLUGFORGE_MAX_UPLOAD_MB: positiveInt.default(200),
  PLUGFORGE_MAX_ARTIFACT_MB: positiveInt.default(256),
  PLUGFORGE_MAX_LOG_KB: positiveInt.default(1024),
  /** Lines a build's log keeps (its last ones): the cap of its Redis stream (MAXLEN), which the byte cap per container does not bound across attempts and targets. */
  PLUGFORGE_MAX_LOG_LINES: positiveInt.default(DEFAULT_MAX_LOG_LINES),
  /** Log follows (?follow=1) one API process serves at once: each holds a Redis connection of its own. */
  PLUGFORGE_MAX_LOG_FOLLOWERS: positiveInt.default(200),
  /** How many times a target is tried when the failure is not the plugin's fault. */
  PLUGFORGE_ATTEMPTS: positiveInt.default(3),
  PLUGFORGE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PLUGFORGE_SWEEP_ORPHANS: boolFlag.default(true),
  /** A build asking for a Go release no worker has waits while a worker makes its images; 0: refused (422). */
  PLUGFORGE_IMAGES_ON_DEMAND: boolFlag.default(true),
  /** Whose identical builds a submission takes its artifacts from instead of running again (src/builds/build-reuse.ts). */
  PLUGFORGE_REUSE: z.enum(['tenant', 'shared', 'off']).default('tenant'),
  /** The Go minors images may be made on demand for (a comma list); default: every minor the Dockerfiles install. */
  PLUGFORGE_IMAGES_ON_DEMAND_GO: z
    .string()
    .default(DEBIAN_GO_MINORS.join(','))
    .refine(
      (v) => v.split(',').every((m) => (DEBIAN_GO_MINORS as readonly string[]).includes(m.trim())),
      `must be a comma list of Go minors among ${DEBIAN_GO_MINORS.join(', ')}`,
    ),
  /** Distinct Go releases one tenant may have images made for on demand per UTC day (src/api/on-demand-quota.ts); 0: no limit. */
  PLUGFORGE_IMAGES_ON_DEMAND_PER_TENANT: z.coerce.number().int().min(0).default(3),
  /** Exact releases ("1.22.12,1.23.8") that raise the toolchain floor of their minors (src/images/toolchain-floor.ts); never lower it. */
  PLUGFORGE_GO_FLOOR: z
    .string()
    .regex(/^[\d., ]*$/, 'must be a comma list of exact Go releases such as 1.22.12,1.23.8')
    .default(''),
  /** Where a `plugforge worker` process serves its /metrics (the API serves its own); unset: nowhere. */
  PLUGFORGE_WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** A runtime registered with the workers' Docker engines (daemon.json "runtimes"), e.g. runsc; unset: the engine's default. */
  /** How 386 plugins are loaded for verification: auto (natively where the kernel runs 32-bit x86, else qemu-i386), native, qemu. */
  PLUGFORGE_PROBE_386: z.enum(['auto', 'native', 'qemu']).default('auto'),
  PLUGFORGE_CONTAINER_RUNTIME: z
    .string()
    .regex(/^[a-z0-9_-]+$/, "must be the name of a runtime in the Docker engine's daemon.json, such as runsc")
    .optional(),
  // Module downloads (the dependency phase). Configuration only: a request never sets them.
  PLUGFORGE_GOPROXY: z
    .string()
    .regex(
      /^(https?:\/\/[^\s,|]+|file:\/\/\/[^\s,|]+|off)$/,
      'must be one http(s):// URL, a file:/// path (a list is not supported), or off',
    )
    .default('https://proxy.golang.org'),
  /** A go.sum-format file pinning golang.org/toolchain hashes (exact releases from a proxy, docs/images.md, "Where Go comes from"). */
  PLUGFORGE_TOOLCHAIN_SUMS: z
    .string()
    .regex(/^\/[^\0]*$/, 'must be an absolute path to a go.sum-format file')
    .optional(),
  PLUGFORGE_GOSUMDB: z
    .string()
    .regex(/^[\w.:/+ -]+$/)
    .default('sum.golang.org'),
  PLUGFORGE_GONOSUMDB: z
    .string()
    .regex(/^[\w.*/,-]*$/)
    .default(''),
  PLUGFORGE_GOPRIVATE: z
    .string()
    .regex(/^[\w.*/,-]*$/)
    .default(''),
  PLUGFORGE_GOINSECURE: z
    .string()
    .regex(/^[\w.*/,-]*$/)
    .default(''),
  PLUGFORGE_DEPS_TIMEOUT_SECONDS: positiveInt.default(600),
  /** The name prefix of the module cache volumes: one per tenant, `<prefix>-<tenant>` (docs/decisions.md, "A module cache per tenant"). */
  PLUGFORGE_MODULE_CACHE_VOLUME: z
    .string()
    .regex(/^plugforge-gomod[a-z0-9._-]*$/, 'must start with plugforge-gomod')
    .default('plugforge-gomod'),
  /** Bound of each per-tenant module cache: emptied before a dependency download once it holds more, when no build is using it. */
  PLUGFORGE_MODULE_CACHE_MAX_MB: positiveInt.default(2048),
  /** Days a finished build (document, logs, artifacts, source) is kept; 0: for ever. */
  PLUGFORGE_RETENTION_DAYS: z.coerce.number().min(0).default(30),
  /** A PEM ECDSA P-256 private key that signs artifacts and provenance; unset: one generated into <data dir>/keys/ (src/provenance/signing-keys.ts). */
  PLUGFORGE_SIGNING_KEY: z
    .string()
    .regex(/^\/[^\0]*$/, 'must be an absolute path to a PEM ECDSA P-256 private key')
    .optional(),
});

export type Env = z.infer<typeof envSchema>;

// Uploads, archive caps and tenants (see SECURITY.md).
const securityEnvSchema = z.object({
  /** An upload that sends no byte for this long is cut off (408 upload_timeout). */
  PLUGFORGE_UPLOAD_IDLE_SECONDS: positiveInt.default(30),
  /** The whole upload must arrive within this. */
  PLUGFORGE_UPLOAD_TIMEOUT_SECONDS: positiveInt.default(900),
  PLUGFORGE_ARCHIVE_MAX_ENTRIES: positiveInt.default(10_000),
  PLUGFORGE_ARCHIVE_MAX_FILE_MB: positiveInt.default(64),
  PLUGFORGE_ARCHIVE_MAX_TOTAL_MB: positiveInt.default(512),
  PLUGFORGE_ARCHIVE_MAX_DEPTH: positiveInt.default(32),
  PLUGFORGE_ARCHIVE_MAX_NAME_BYTES: positiveInt.default(1024),
  /** `tenant:sha256hex` entries (comma, space or newline separated): the sha256 of each token, never the token. */
  PLUGFORGE_TOKENS: z.string().optional(),
  /** A file of `tenant:sha256hex` lines (# comments), read at start-up. */
  PLUGFORGE_TOKENS_FILE: z.string().optional(),
  /** sha256 hashes (hex, comma or space separated) of the worker credentials the API accepts on /v1/worker/… (workers without the data directory). */
  PLUGFORGE_WORKER_TOKENS: z
    .string()
    .regex(
      /^[\s,]*[0-9a-fA-F]{64}(?:[\s,]+[0-9a-fA-F]{64})*[\s,]*$/,
      'must be sha256 hashes of worker credentials (printf %s "$TOKEN" | sha256sum), comma or space separated, never the credentials themselves',
    )
    .optional(),
  /** sha256 hashes (hex, comma or space separated) of the operator's tokens: on /v1/hosts only, they register and remove installation-wide host releases (docs/hosts.md). */
  PLUGFORGE_OPERATOR_TOKENS: z
    .string()
    .regex(
      /^[\s,]*[0-9a-fA-F]{64}(?:[\s,]+[0-9a-fA-F]{64})*[\s,]*$/,
      'must be sha256 hashes of operator tokens (printf %s "$TOKEN" | sha256sum), comma or space separated, never the tokens themselves',
    )
    .optional(),
  /** Host releases one tenant (and the operator, installation-wide) may register. */
  PLUGFORGE_HOSTS_MAX_PER_TENANT: positiveInt.default(500),
  /** Where each host name's releases are described, resolved on first use (docs/hosts.md): JSON {"<name>": {"goMod": URL, "goVersion": URL}}, `{version}` in each. */
  PLUGFORGE_HOST_SOURCES: z
    .string()
    .transform((text, ctx) => {
      try {
        return hostSourcesSchema.parse(JSON.parse(text));
      } catch (err) {
        const issue =
          err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (err as Error).message;
        ctx.addIssue({
          code: 'custom',
          message: `must be JSON {"<host name>": {"goMod": "<URL with {version}>", "goVersion": "<URL with {version}>"}} (${issue})`,
        });
        return z.NEVER;
      }
    })
    .optional(),
  /** The hosts (name or name:port) a release's description may be fetched from; default: those of PLUGFORGE_HOST_SOURCES. */
  PLUGFORGE_HOST_FETCH_ALLOW: z.string().optional(),
  /** The hosts build callbacks may be sent to (docs/hosts.md, "Callbacks"): names, `*.domain` for its subdomains; none: no callbacks. */
  PLUGFORGE_CALLBACK_HOSTS: z.string().optional(),
  /** true: callbacks may reach loopback, private and link-local addresses (a test's receiver; a receiver inside the site's network). */
  PLUGFORGE_CALLBACK_PRIVATE: z.enum(['true', 'false']).default('false'),
  /** How long a callback is retried while its receiver does not take it. */
  PLUGFORGE_CALLBACK_RETRY_SECONDS: positiveInt.default(3600),
  /** A worker without the data directory: the API it takes sources from and gives artifacts to. */
  PLUGFORGE_API_URL: z.url().optional(),
  /** That worker's credential (one whose sha256 is in the API's PLUGFORGE_WORKER_TOKENS). */
  PLUGFORGE_WORKER_TOKEN: z
    .string()
    .regex(/^[\x21-\x7e]{16,512}$/, 'must be 16 to 512 printable characters without spaces')
    .optional(),
  /** Builds of one tenant that may be queued or running at once; 0: no limit. */
  PLUGFORGE_TENANT_MAX_ACTIVE_BUILDS: z.coerce.number().int().min(0).default(20),
  /** Builds of one tenant that may be running at once (the rest wait in the queue); 0: no limit. */
  PLUGFORGE_TENANT_MAX_RUNNING_BUILDS: z.coerce.number().int().min(0).default(0),
  /** The share (percent) of the log followers and of the host-binary memory budget one tenant may hold; with tokens only. */
  PLUGFORGE_TENANT_SHARE_PERCENT: z.coerce.number().int().min(1).max(100).default(25),
});

// Where blobs are stored (src/store/open-blob-store.ts).
const blobStoreEnvSchema = z.object({
  /** fs: <data dir>/blobs; s3://bucket[/prefix]: an S3 bucket (keys <prefix>/sha256/ab/abcdef…). */
  PLUGFORGE_BLOB_STORE: z
    .string()
    .regex(
      /^(fs|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[\w!.*'()-]+)*\/?)$/,
      "must be fs or s3://bucket[/prefix] (a bucket name of 3-63 lower-case letters, digits, dots and dashes; a prefix of letters, digits and !-_.*'() between slashes)",
    )
    .default('fs'),
  /** An S3-compatible server, e.g. http://127.0.0.1:7480 (Ceph radosgw); unset: AWS. Addressed path-style (http://host/bucket/key). */
  PLUGFORGE_S3_ENDPOINT: z
    .string()
    .regex(/^https?:\/\/[^\s/?#]+\/?$/, 'must be an http:// or https:// URL of a server, such as http://127.0.0.1:7480')
    .optional(),
  /** Local directory of the S3 store's temp files (uploads being received, blobs being hashed before they are sent). */
  PLUGFORGE_S3_TEMP_DIR: z
    .string()
    .regex(/^\/[^\0]*$/, 'must be an absolute path')
    .default(path.join(os.tmpdir(), 'plugforge-s3-temp')),
});

// The AWS SDK's own variables, read (from the same environment) only for an s3:// store.
const awsEnvSchema = z.object({
  AWS_REGION: z
    .string()
    .regex(/^[a-z0-9-]+$/, 'must be a region name such as us-east-1')
    .default('us-east-1'),
  AWS_ACCESS_KEY_ID: z
    .string()
    .regex(/^[\x21-\x7e]+$/, 'must be printable characters without spaces')
    .optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  AWS_SESSION_TOKEN: z.string().min(1).optional(),
});

/** One API token: the tenant it acts for and the sha256 of the token. */
export interface TenantToken {
  tenant: string;
  sha256: Buffer;
}

/**
 * Tenant names end up in cache volume names (plugforge-gocache-<tenant>-…), so they are
 * restricted to what such a name keeps unchanged: two tenants never share a volume.
 */
export const TENANT_RE = /^[a-z0-9][a-z0-9_-]{0,39}$/;

export interface Config {
  port: number;
  host: string;
  publicUrl?: string;
  redisUrl: string;
  dataDir: string;
  dockerHost?: string;
  imageRepo: string;
  defaultGo: string;
  defaultTargets: string[];
  workerConcurrency: number;
  queueName: string;
  build: {
    timeoutMs: number;
    memoryBytes: number;
    nanoCpus: number;
    pidsLimit: number;
    /** Sizes of a container's /work and /tmp (held tmpfs volumes: docs/decisions.md, "Every writable path has a size"). */
    workDiskBytes: number;
    tmpDiskBytes: number;
    /** Bound of one per-tenant build cache volume, kept by trimming. */
    cacheMaxBytes: number;
    maxArtifactBytes: number;
    maxLogBytes: number;
    /** Per-tenant cache volumes unused for longer than this are removed by the workers' sweep; 0: never. */
    cacheIdleMs: number;
    attempts: number;
    /** The engine runtime (HostConfig.Runtime) of build, dependency and probe containers; undefined: the engine's default. */
    runtime?: string;
    /** How the loading probe runs 386 plugins (src/verify/probe-loaders.ts). */
    probe386: 'auto' | 'native' | 'qemu';
  };
  maxUploadBytes: number;
  /** Log follows served at once by one API process (each holds a Redis connection); past it 503 too_many_followers. */
  maxLogFollowers: number;
  /** Lines a build's log stream keeps, its last ones (MAXLEN); readers say where earlier ones were dropped. */
  maxLogLines: number;
  logLevel: Env['PLUGFORGE_LOG_LEVEL'];
  sweepOrphans: boolean;
  /** Images on demand: whether a build may wait for its Go release's images to be made, and for which minors. */
  images: {
    onDemand: boolean;
    onDemandGo: string[];
    /** Distinct releases one tenant may have images made for on demand per UTC day; 0: no limit. */
    onDemandPerTenant: number;
    /** A go.sum-format file of pinned toolchain hashes (PLUGFORGE_TOOLCHAIN_SUMS); the toolchain module comes through `goProxy`. */
    toolchainSums?: string;
    /** The oldest release of each minor any build or image build may use (src/images/toolchain-floor.ts). */
    floor: GoFloor;
  };
  /** The port of a worker-only process's /metrics; undefined: not served. */
  workerMetricsPort?: number;
  /** Where Go fetches modules and toolchain modules from (an http(s) proxy URL, or file:///dir on the Docker host, mounted read-only). */
  goProxy: GoProxySettings;
  modules: {
    timeoutMs: number;
    /** The prefix of the per-tenant module cache volumes (`<prefix>-<tenant>`). */
    cacheVolume: string;
    /** Bound of one tenant's module cache, kept by emptying it. */
    cacheMaxBytes: number;
  };
  upload: {
    idleMs: number;
    totalMs: number;
    archive: ArchiveLimits;
  };
  tenancy: {
    /** Configured API tokens; undefined: no authentication, every caller is tenant "public". */
    tokens?: TenantToken[];
    /** Builds accepted and not finished (queued or running), checked at submission; 0: no limit. */
    maxActiveBuilds: number;
    /** Builds running at once, checked when a worker takes a job (src/queue/tenant-running.ts); 0: no limit. */
    maxRunningBuilds: number;
    /**
     * The fraction (0-1] of the log followers and of the host-binary budget one tenant may
     * hold, with tokens configured; 1 without them (every caller is the one tenant).
     */
    share: number;
  };
  /** The PEM ECDSA P-256 private key the API signs with (PLUGFORGE_SIGNING_KEY, checked at start-up); undefined: generated in the data directory. */
  signingKeyFile?: string;
  /** Whose identical builds a submission shares (tenant: its own; shared: any tenant's; off: none). */
  reuse: ReuseScope;
  /**
   * Workers that share no disk with the API (docs/deployment.md): on the API, the sha256s
   * of the worker credentials it accepts; on such a worker, the API's URL and its credential.
   */
  remoteWorkers: {
    tokenHashes: Buffer[];
    api?: { url: string; token: string };
  };
  /** Host releases by name (docs/hosts.md): who registers installation-wide ones, and how many a tenant may have. */
  hosts: {
    /** sha256s of the operator's tokens (PLUGFORGE_OPERATOR_TOKENS); none: no installation-wide releases can be registered. */
    operatorTokenHashes: Buffer[];
    maxPerTenant: number;
    /** Where releases not registered are described, per host name (resolved on first use, registered installation-wide). */
    sources: Record<string, { goMod: string; goVersion: string }>;
    /** The hosts those descriptions may be fetched from. */
    fetchAllow: string[];
  };
  /** Build callbacks and watches (docs/hosts.md): where callbacks may go, and for how long each is retried. */
  callbacks: {
    /** Host names, or `*.domain`; empty: a build asking for a callback is refused. */
    hosts: string[];
    /** Whether loopback, private and link-local addresses may be reached. */
    privateAddresses: boolean;
    retryMs: number;
  };
  /** Where sources and artifacts are stored (PLUGFORGE_BLOB_STORE). */
  blobStore: BlobStoreConfig;
  /** What the API sweeps away (src/builds/retention-sweeper.ts). */
  retention: {
    /** A finished build older than this goes, with its logs and blobs; 0: nothing is swept. */
    maxAgeMs: number;
    /** Blobs and temp files younger than this always stay (at least an hour, and twice the upload deadline). */
    graceMs: number;
  };
}

export { ConfigError } from './config-error.js';

/**
 * Each part gets only its slice of the configuration (docs/architecture.md, "Configuration"):
 * the API and the worker are handed `sliceOf(config, …)` with the names below, and their
 * code cannot read a setting that is not in its list.
 */
export const API_SETTINGS = [
  'publicUrl',
  'dataDir',
  'signingKeyFile',
  'queueName',
  'imageRepo',
  'defaultGo',
  'defaultTargets',
  'build',
  'images',
  'maxUploadBytes',
  'maxLogFollowers',
  'maxLogLines',
  'upload',
  'tenancy',
  'reuse',
  'remoteWorkers',
  'retention',
  'hosts',
  'callbacks',
] as const satisfies readonly (keyof Config)[];
export type ApiConfig = Pick<Config, (typeof API_SETTINGS)[number]>;

export const WORKER_SETTINGS = [
  'queueName',
  'imageRepo',
  'workerConcurrency',
  'sweepOrphans',
  'build',
  'images',
  'goProxy',
  'modules',
  'tenancy',
] as const satisfies readonly (keyof Config)[];
export type WorkerConfig = Pick<Config, (typeof WORKER_SETTINGS)[number]>;

/** A copy of `config` with only the named sections. */
export function sliceOf<K extends keyof Config>(config: Config, keys: readonly K[]): Pick<Config, K> {
  return Object.fromEntries(keys.filter((k) => config[k] !== undefined).map((k) => [k, config[k]])) as Pick<Config, K>;
}

/** What a toolchain-module fetch needs: the one proxy section and the toolchain's own pins. */
export function toolchainFetchOf(config: Pick<Config, 'goProxy' | 'images'>): ToolchainFetchConfig {
  return { ...config.goProxy, ...(config.images.toolchainSums ? { sumsFile: config.images.toolchainSums } : {}) };
}

/**
 * Parses the environment. Throws ConfigError naming every variable that is wrong.
 * Longer than 60 lines: the configuration object written out, one line per setting, so that
 * each variable's place in it is found by reading, not by following helpers.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('PLUGFORGE_') && v !== ''));
  const parsed = envSchema.extend(securityEnvSchema.shape).safeParse(present);
  const lines = parsed.success
    ? []
    : parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? '?');
        // Shown without a URL's user info: start-up output ends up in logs.
        return `${name}=${redactUrls(JSON.stringify(present[name] ?? ''))}: ${issue.message}`;
      });
  const tokens = parsed.success ? loadTokens(parsed.data, lines) : undefined;
  if (parsed.success && parsed.data.PLUGFORGE_SIGNING_KEY) checkSigningKey(parsed.data.PLUGFORGE_SIGNING_KEY, lines);
  if (parsed.success && !parsed.data.PLUGFORGE_API_URL !== !parsed.data.PLUGFORGE_WORKER_TOKEN) {
    lines.push(
      'PLUGFORGE_API_URL and PLUGFORGE_WORKER_TOKEN: a worker without the data directory needs both (the API to take sources from and its credential), or neither',
    );
  }
  const floor = parsed.success ? raiseGoFloor(parsed.data.PLUGFORGE_GO_FLOOR) : undefined;
  for (const problem of floor?.problems ?? []) lines.push(`PLUGFORGE_GO_FLOOR=${JSON.stringify(present.PLUGFORGE_GO_FLOOR)}: ${problem}`);
  // A default every build would be refused with is a start-up error, not 422s later.
  if (parsed.success && floor && !floor.problems.length) {
    try {
      requireSafeGoRelease(parsed.data.PLUGFORGE_DEFAULT_GO, floor.floor);
    } catch (err) {
      lines.push(`PLUGFORGE_DEFAULT_GO=${JSON.stringify(parsed.data.PLUGFORGE_DEFAULT_GO)}: ${(err as Error).message}`);
    }
  }
  const blobStore = loadBlobStore(env, lines);
  if (!parsed.success || lines.length) throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  const e = parsed.data;
  return {
    port: e.PLUGFORGE_PORT,
    host: e.PLUGFORGE_HOST,
    ...(e.PLUGFORGE_PUBLIC_URL ? { publicUrl: e.PLUGFORGE_PUBLIC_URL.replace(/\/+$/, '') } : {}),
    redisUrl: e.PLUGFORGE_REDIS_URL,
    dataDir: path.resolve(e.PLUGFORGE_DATA_DIR),
    ...(e.PLUGFORGE_DOCKER_HOST ? { dockerHost: e.PLUGFORGE_DOCKER_HOST } : {}),
    imageRepo: e.PLUGFORGE_IMAGE_REPO,
    defaultGo: e.PLUGFORGE_DEFAULT_GO,
    defaultTargets: e.PLUGFORGE_DEFAULT_TARGETS.split(',').map((t) => t.trim()),
    workerConcurrency: e.PLUGFORGE_WORKER_CONCURRENCY,
    queueName: e.PLUGFORGE_QUEUE,
    build: {
      timeoutMs: e.PLUGFORGE_BUILD_TIMEOUT_SECONDS * 1000,
      memoryBytes: e.PLUGFORGE_BUILD_MEMORY_MB * 1024 * 1024,
      nanoCpus: Math.round(e.PLUGFORGE_BUILD_CPUS * 1e9),
      pidsLimit: e.PLUGFORGE_BUILD_PIDS,
      workDiskBytes: e.PLUGFORGE_WORK_DISK_MB * 1024 * 1024,
      tmpDiskBytes: e.PLUGFORGE_TMP_DISK_MB * 1024 * 1024,
      cacheMaxBytes: e.PLUGFORGE_CACHE_MAX_MB * 1024 * 1024,
      maxArtifactBytes: e.PLUGFORGE_MAX_ARTIFACT_MB * 1024 * 1024,
      maxLogBytes: e.PLUGFORGE_MAX_LOG_KB * 1024,
      cacheIdleMs: Math.round(e.PLUGFORGE_CACHE_IDLE_DAYS * 24 * 3600 * 1000),
      attempts: e.PLUGFORGE_ATTEMPTS,
      ...(e.PLUGFORGE_CONTAINER_RUNTIME ? { runtime: e.PLUGFORGE_CONTAINER_RUNTIME } : {}),
      probe386: e.PLUGFORGE_PROBE_386,
    },
    maxUploadBytes: e.PLUGFORGE_MAX_UPLOAD_MB * 1024 * 1024,
    maxLogFollowers: e.PLUGFORGE_MAX_LOG_FOLLOWERS,
    maxLogLines: e.PLUGFORGE_MAX_LOG_LINES,
    logLevel: e.PLUGFORGE_LOG_LEVEL,
    sweepOrphans: e.PLUGFORGE_SWEEP_ORPHANS,
    images: {
      onDemand: e.PLUGFORGE_IMAGES_ON_DEMAND,
      onDemandGo: e.PLUGFORGE_IMAGES_ON_DEMAND_GO.split(',').map((m) => m.trim()),
      onDemandPerTenant: e.PLUGFORGE_IMAGES_ON_DEMAND_PER_TENANT,
      floor: floor!.floor,
      ...(e.PLUGFORGE_TOOLCHAIN_SUMS ? { toolchainSums: e.PLUGFORGE_TOOLCHAIN_SUMS } : {}),
    },
    ...(e.PLUGFORGE_WORKER_METRICS_PORT !== undefined ? { workerMetricsPort: e.PLUGFORGE_WORKER_METRICS_PORT } : {}),
    goProxy: {
      proxy: e.PLUGFORGE_GOPROXY,
      sumdb: e.PLUGFORGE_GOSUMDB,
      noSumDb: e.PLUGFORGE_GONOSUMDB,
      private: e.PLUGFORGE_GOPRIVATE,
      insecure: e.PLUGFORGE_GOINSECURE,
    },
    modules: {
      timeoutMs: e.PLUGFORGE_DEPS_TIMEOUT_SECONDS * 1000,
      cacheVolume: e.PLUGFORGE_MODULE_CACHE_VOLUME,
      cacheMaxBytes: e.PLUGFORGE_MODULE_CACHE_MAX_MB * 1024 * 1024,
    },
    upload: {
      idleMs: e.PLUGFORGE_UPLOAD_IDLE_SECONDS * 1000,
      totalMs: e.PLUGFORGE_UPLOAD_TIMEOUT_SECONDS * 1000,
      archive: {
        maxEntries: e.PLUGFORGE_ARCHIVE_MAX_ENTRIES,
        maxFileBytes: e.PLUGFORGE_ARCHIVE_MAX_FILE_MB * 1024 * 1024,
        maxTotalBytes: e.PLUGFORGE_ARCHIVE_MAX_TOTAL_MB * 1024 * 1024,
        maxDepth: e.PLUGFORGE_ARCHIVE_MAX_DEPTH,
        maxNameLength: e.PLUGFORGE_ARCHIVE_MAX_NAME_BYTES,
      },
    },
    tenancy: {
      ...(tokens ? { tokens } : {}),
      maxActiveBuilds: e.PLUGFORGE_TENANT_MAX_ACTIVE_BUILDS,
      maxRunningBuilds: e.PLUGFORGE_TENANT_MAX_RUNNING_BUILDS,
      share: tokens ? e.PLUGFORGE_TENANT_SHARE_PERCENT / 100 : 1,
    },
    ...(e.PLUGFORGE_SIGNING_KEY ? { signingKeyFile: e.PLUGFORGE_SIGNING_KEY } : {}),
    reuse: e.PLUGFORGE_REUSE,
    remoteWorkers: {
      tokenHashes: (e.PLUGFORGE_WORKER_TOKENS ?? '')
        .split(/[\s,]+/)
        .filter(Boolean)
        .map((h) => Buffer.from(h, 'hex')),
      ...(e.PLUGFORGE_API_URL && e.PLUGFORGE_WORKER_TOKEN
        ? { api: { url: e.PLUGFORGE_API_URL.replace(/\/$/, ''), token: e.PLUGFORGE_WORKER_TOKEN } }
        : {}),
    },
    hosts: {
      operatorTokenHashes: (e.PLUGFORGE_OPERATOR_TOKENS ?? '')
        .split(/[\s,]+/)
        .filter(Boolean)
        .map((h) => Buffer.from(h, 'hex')),
      maxPerTenant: e.PLUGFORGE_HOSTS_MAX_PER_TENANT,
      sources: e.PLUGFORGE_HOST_SOURCES ?? {},
      fetchAllow: e.PLUGFORGE_HOST_FETCH_ALLOW
        ? e.PLUGFORGE_HOST_FETCH_ALLOW.split(/[\s,]+/).filter(Boolean)
        : [
            ...new Set(
              Object.values(e.PLUGFORGE_HOST_SOURCES ?? {}).flatMap((t) =>
                [t.goMod, t.goVersion].map((u) => new URL(u.replaceAll('{version}', 'v')).host),
              ),
            ),
          ],
    },
    callbacks: {
      hosts: (e.PLUGFORGE_CALLBACK_HOSTS ?? '').split(/[\s,]+/).filter(Boolean),
      privateAddresses: e.PLUGFORGE_CALLBACK_PRIVATE === 'true',
      retryMs: e.PLUGFORGE_CALLBACK_RETRY_SECONDS * 1000,
    },
    blobStore,
    retention: {
      maxAgeMs: Math.round(e.PLUGFORGE_RETENTION_DAYS * 24 * 3600 * 1000),
      graceMs: Math.max(3600_000, 2 * e.PLUGFORGE_UPLOAD_TIMEOUT_SECONDS * 1000),
    },
  };
}

/**
 * Reads PLUGFORGE_BLOB_STORE and, for an s3:// store, PLUGFORGE_S3_* and the AWS SDK's
 * variables. Problems are added to `problems`, naming the variable (never a secret's value).
 */
function loadBlobStore(env: NodeJS.ProcessEnv, problems: string[]): BlobStoreConfig {
  const present = (prefix: string) => Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith(prefix) && v !== ''));
  const report = (issues: z.core.$ZodIssue[]) => {
    for (const issue of issues) {
      const name = String(issue.path[0] ?? '?');
      const shown = /SECRET|TOKEN/.test(name) ? '(not shown)' : JSON.stringify(env[name] ?? '');
      problems.push(`${name}=${shown}: ${issue.message}`);
    }
  };
  const store = blobStoreEnvSchema.safeParse(present('PLUGFORGE_'));
  if (!store.success) report(store.error.issues);
  const url = store.success ? /^s3:\/\/([^/]+)\/?(.*)$/.exec(store.data.PLUGFORGE_BLOB_STORE) : null;
  if (!url) {
    for (const name of ['PLUGFORGE_S3_ENDPOINT', 'PLUGFORGE_S3_TEMP_DIR'] as const) {
      if (store.success && env[name])
        problems.push(
          `${name}: set, but PLUGFORGE_BLOB_STORE is fs (the data directory); name a bucket with PLUGFORGE_BLOB_STORE=s3://bucket[/prefix], or unset ${name}`,
        );
    }
    return { kind: 'fs' };
  }
  const aws = awsEnvSchema.safeParse(present('AWS_'));
  if (!aws.success || !store.success) {
    if (!aws.success) report(aws.error.issues);
    return { kind: 'fs' };
  }
  const e = { ...store.data, ...aws.data };
  if (!e.AWS_ACCESS_KEY_ID !== !e.AWS_SECRET_ACCESS_KEY) {
    problems.push(
      'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: give both, or neither (then the AWS SDK looks for credentials in its shared config files and instance or container roles)',
    );
  }
  const prefix = (url[2] ?? '').replace(/\/+$/, '');
  return {
    kind: 's3',
    bucket: url[1] as string,
    prefix: prefix ? `${prefix}/` : '',
    ...(e.PLUGFORGE_S3_ENDPOINT ? { endpoint: e.PLUGFORGE_S3_ENDPOINT.replace(/\/$/, '') } : {}),
    region: e.AWS_REGION,
    forcePathStyle: e.PLUGFORGE_S3_ENDPOINT !== undefined,
    ...(e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY
      ? {
          credentials: {
            accessKeyId: e.AWS_ACCESS_KEY_ID,
            secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
            ...(e.AWS_SESSION_TOKEN ? { sessionToken: e.AWS_SESSION_TOKEN } : {}),
          },
        }
      : {}),
    tempDir: path.resolve(e.PLUGFORGE_S3_TEMP_DIR),
  };
}

/** PLUGFORGE_SIGNING_KEY must name a readable PEM private key of ECDSA on P-256 (what cosign verifies as ecdsa-p256-sha256). */
function checkSigningKey(file: string, problems: string[]): void {
  const at = `PLUGFORGE_SIGNING_KEY=${JSON.stringify(file)}`;
  try {
    const key = createPrivateKey(readFileSync(file));
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      problems.push(
        `${at}: is a ${key.asymmetricKeyType} key${key.asymmetricKeyDetails?.namedCurve ? ` on ${key.asymmetricKeyDetails.namedCurve}` : ''}, not ECDSA P-256 (make one with: openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt)`,
      );
    }
  } catch (err) {
    problems.push(`${at}: cannot be read as a PEM private key without a passphrase (${(err as Error).message})`);
  }
}

/**
 * Reads PLUGFORGE_TOKENS and PLUGFORGE_TOKENS_FILE: `tenant:sha256hex` entries. Only hashes
 * are configured, so neither the environment nor the file holds a usable token. Problems
 * are added to `problems`, one line each, naming the variable (and the file's line).
 * Undefined when neither is set: the API is open.
 */
function loadTokens(e: z.infer<typeof securityEnvSchema>, problems: string[]): TenantToken[] | undefined {
  const sources: { variable: string; where: (line: number) => string; entries: string[] }[] = [];
  if (e.PLUGFORGE_TOKENS !== undefined) {
    sources.push({ variable: 'PLUGFORGE_TOKENS', where: (n) => `entry ${n}`, entries: e.PLUGFORGE_TOKENS.split(/[\s,]+/) });
  }
  if (e.PLUGFORGE_TOKENS_FILE !== undefined) {
    const file = e.PLUGFORGE_TOKENS_FILE;
    try {
      sources.push({
        variable: 'PLUGFORGE_TOKENS_FILE',
        where: (n) => `${file}:${n}`,
        entries: readFileSync(file, 'utf8')
          .split('\n')
          .map((line) => line.replace(/#.*$/, '')),
      });
    } catch (err) {
      problems.push(`PLUGFORGE_TOKENS_FILE=${JSON.stringify(file)}: cannot be read (${(err as Error).message})`);
    }
  }
  if (!sources.length) return undefined;

  const tokens: TenantToken[] = [];
  const seen = new Map<string, string>();
  for (const { variable, where, entries } of sources) {
    entries.forEach((raw, index) => {
      const entry = raw.trim();
      if (!entry) return;
      const match = /^([^:]+):([0-9a-fA-F]{64})$/.exec(entry);
      const at = `${variable} (${where(index + 1)})`;
      if (!match) {
        problems.push(`${at}: must be tenant:sha256hex, the sha256 of the token (printf %s "$TOKEN" | sha256sum), never the token itself`);
        return;
      }
      const tenant = match[1] as string;
      const hash = (match[2] as string).toLowerCase();
      if (!TENANT_RE.test(tenant)) {
        problems.push(
          `${at}: tenant ${JSON.stringify(tenant)} must be 1-40 lower-case letters, digits, "-" or "_", starting with a letter or digit`,
        );
        return;
      }
      const other = seen.get(hash);
      if (other !== undefined && other !== tenant) {
        problems.push(`${at}: the same token hash is configured for tenants ${other} and ${tenant}`);
        return;
      }
      if (other === undefined) tokens.push({ tenant, sha256: Buffer.from(hash, 'hex') });
      seen.set(hash, tenant);
    });
  }
  if (!tokens.length && !problems.length)
    problems.push(`${sources.map((s) => s.variable).join(', ')}: no token configured (an empty list would lock every client out)`);
  return tokens;
}
