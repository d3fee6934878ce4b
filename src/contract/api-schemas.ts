import { z } from 'zod';
import { BUILD_STATUSES, PHASES } from './build-vocabulary.js';
import { ALL_TARGET_IDS } from './targets.js';

/**
 * The responses of the REST API as zod schemas: the one description of what the API
 * sends. The views that make the bodies (src/builds/build-view.ts, the routes) are typed
 * with them, and GET /v1/openapi.json is generated from them (src/api/openapi.ts), so the
 * published description and the code cannot say different things: test/openapi.test.ts
 * checks real responses of a real build against the published document. Objects are
 * strict: a field renamed in one place only is a field the other does not allow.
 */
export const registry = z.registry<{ id: string; description?: string }>();

const status = z.enum(BUILD_STATUSES);
const target = z.enum(ALL_TARGET_IDS);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const time = z.iso.datetime();
const perTarget = <T extends z.ZodType>(schema: T) => z.partialRecord(target, schema);

export const errorBodySchema = z
  .object({
    error: z.looseObject({
      code: z.string().describe('machine-readable, e.g. build_not_found'),
      message: z.string().describe('what happened and what to do'),
    }),
  })
  .strict();
registry.add(errorBodySchema, {
  id: 'Error',
  description: 'Every error: a code and a sentence that says what to do (some codes add details).',
});

const targetErrorSchema = z.object({ code: z.string(), message: z.string(), retryable: z.boolean().optional() }).strict();

const verifySchema = z
  .object({
    status: z.enum(['passed', 'failed', 'skipped']),
    message: z.string(),
    method: z.enum(['fingerprints', 'probe', 'elf', 'header']).optional(),
    fingerprints: z
      .object({
        hostBinary: sha256,
        go: z.string(),
        compared: z.number().int(),
        differing: z.array(z.string()),
        status: z.enum(['passed', 'failed']).optional(),
        message: z.string().optional(),
      })
      .strict()
      .optional(),
    probe: z
      .object({ status: z.enum(['passed', 'failed', 'skipped']), how: z.string().optional(), reason: z.string().optional() })
      .strict()
      .optional(),
    releases: z
      .array(
        z
          .object({
            release: z.string(),
            hostBinary: sha256,
            go: z.string(),
            compared: z.number().int(),
            differing: z.array(z.string()),
            status: z.enum(['passed', 'failed']),
            message: z.string(),
          })
          .strict(),
      )
      .optional()
      .describe("a matrix group's build: the artifact compared with each release's executable of the target"),
  })
  .strict();
registry.add(verifySchema, {
  id: 'Verification',
  description: "What a target's verification proved; method is the strongest check that decided it.",
});

const artifactSchema = z.object({ name: z.string(), size: z.number().int(), sha256, url: z.url() }).strict();

const phasesSchema = z.partialRecord(z.enum(PHASES), z.number().int().nonnegative());

const goSourceName = z.enum(['debian', 'go-release', 'unknown']);
const goSourceChoiceSchema = z
  .object({
    used: goSourceName,
    image: z.string(),
    matched: z.boolean().describe("whether the used source's standard library has the host's package fingerprints"),
    checked: z.array(
      z
        .object({
          source: goSourceName,
          image: z.string(),
          differing: z.array(z.string()).describe("the host's standard packages whose fingerprints differ from this source's"),
          error: z.string().optional().describe('why this source could not be compared'),
        })
        .strict(),
    ),
  })
  .strict();
registry.add(goSourceChoiceSchema, {
  id: 'GoSourceChoice',
  description: 'Which image source of the Go release a target built with (docs/images.md, "Both sources of one release").',
});

const targetSchema = z
  .object({
    status,
    image: z.string(),
    attempt: z.number().int().optional(),
    startedAt: time.optional(),
    finishedAt: time.optional(),
    durationMs: z.number().int().optional(),
    error: targetErrorSchema.optional(),
    artifact: artifactSchema.optional(),
    verify: verifySchema.optional(),
    phases: phasesSchema.optional().describe('where the time went, in ms (docs/architecture.md, "Where the time goes")'),
    goSource: goSourceChoiceSchema
      .optional()
      .describe(
        "for a plugin checked against a host binary: whose standard library the host's fingerprints match, and the image built with",
      ),
  })
  .strict();
registry.add(targetSchema, { id: 'Target', description: 'One target of a build.' });

const phaseStateSchema = {
  status,
  startedAt: time.optional(),
  finishedAt: time.optional(),
  durationMs: z.number().int().optional(),
  error: targetErrorSchema.optional(),
};

/** The fields a build document starts with; the list of builds shows them too. */
const summaryHead = {
  id: z.string(),
  status,
  go: z.string().describe('the exact Go release (while preparing, the one asked for)'),
  goRequested: z.string(),
  name: z.string(),
  mode: z.enum(['plugin', 'exe']),
  host: z.enum(['gotify', 'flow', 'generic']),
  module: z.string(),
  createdAt: time,
  finishedAt: time.optional(),
  canceledAt: time.optional(),
  reusedFrom: z.string().optional().describe('the identical build whose run and artifacts this one shares'),
  matrixOf: z
    .object({ build: z.string(), hosts: z.array(z.string()) })
    .strict()
    .optional()
    .describe('the matrix build this build runs a group of releases for, and those releases (docs/hosts.md, "A matrix")'),
};

const matrixCellSchema = z
  .object({
    host: z.string(),
    target,
    build: z.string().describe("the build that ran this cell (its logs are that build's)"),
    status,
    reusedFrom: z.string().optional().describe("the release of the same build whose description it ran with, when not the cell's own"),
    artifact: artifactSchema.optional(),
    verify: verifySchema.optional(),
    error: targetErrorSchema.optional(),
    finishedAt: time.optional(),
  })
  .strict();
registry.add(matrixCellSchema, { id: 'MatrixCell', description: 'A (host release, target) pair of a matrix build.' });

export const buildDocumentSchema = z
  .object({
    ...summaryHead,
    source: z.object({ sha256, size: z.number().int(), vendored: z.boolean(), requirements: z.boolean() }).strict(),
    build: z
      .object({
        trimpath: z.boolean(),
        tags: z.array(z.string()),
        strip: z.literal(true).optional(),
        package: z.string().optional().describe('the main package built, relative to go.mod (the package option); absent: the module root'),
      })
      .strict(),
    verify: z.enum(['strict', 'warn', 'loaded']),
    hostMatch: z
      .object({
        from: z.enum(['goMod', 'binary']),
        go: z.string().optional(),
        trimpath: z.boolean(),
        tags: z.array(z.string()),
        modules: z.number().int(),
        aligned: z.array(z.object({ path: z.string(), from: z.string(), to: z.string() }).strict()),
        notes: z.array(z.string()),
        release: z.string().optional().describe('the registered host release the build was described by (hosts=<name>@<version>)'),
      })
      .strict()
      .optional(),
    hostBinaries: z
      .array(z.object({ target, sha256, size: z.number().int(), go: z.string(), packages: z.number().int() }).strict())
      .optional(),
    images: z
      .object({ ...phaseStateSchema, go: z.string(), built: z.boolean().optional() })
      .strict()
      .optional(),
    dependencies: z
      .object({
        ...phaseStateSchema,
        modules: z.number().int().optional(),
        downloaded: z.number().int().optional(),
        goSumAdded: z.array(z.string()).optional(),
      })
      .strict()
      .optional(),
    targets: perTarget(targetSchema),
    matrix: z
      .object({
        hosts: z.array(z.string()),
        builds: z.array(z.object({ build: z.string(), hosts: z.array(z.string()), url: z.url() }).strict()),
        cells: z.array(matrixCellSchema),
      })
      .strict()
      .optional()
      .describe(
        'a matrix build (hosts= naming several releases): its releases, the builds that ran them, and a cell per release and target',
      ),
    links: z.object({ self: z.url(), logs: z.url(), artifacts: z.url() }).strict(),
  })
  .strict();
registry.add(buildDocumentSchema, { id: 'Build', description: 'The build document.' });

export const buildSummarySchema = z
  .object({
    ...summaryHead,
    targets: perTarget(z.object({ status, verify: z.enum(['passed', 'failed', 'skipped']).optional() }).strict()),
    cells: z
      .array(z.object({ host: z.string(), target, status, verify: z.enum(['passed', 'failed', 'skipped']).optional() }).strict())
      .optional()
      .describe("a matrix build's cells"),
    links: z.object({ self: z.url() }).strict(),
  })
  .strict();
registry.add(buildSummarySchema, {
  id: 'BuildSummary',
  description: "A build in the list: the document's first fields and each target's status.",
});

export const buildListSchema = z
  .object({ builds: z.array(buildSummarySchema), next: z.string().optional().describe('the cursor of the next page; absent on the last') })
  .strict();
registry.add(buildListSchema, { id: 'BuildList' });

const loadHow = z.string().describe("how the loading probe runs this target's plugins on the workers");

export const toolchainsSchema = z
  .object({
    repo: z.string(),
    defaultGo: z.string(),
    toolchains: z.array(
      z
        .object({
          go: z.string(),
          targets: z.array(target),
          images: perTarget(z.string()),
          source: z.enum(['debian', 'go-release', 'unknown']),
          load: perTarget(loadHow),
        })
        .strict(),
    ),
  })
  .strict();
registry.add(toolchainsSchema, { id: 'Toolchains' });

export const healthSchema = z
  .object({ status: z.literal('ok'), version: z.string().optional().describe("the server's plugforge version") })
  .strict();
registry.add(healthSchema, { id: 'Health' });

export const readinessSchema = z
  .object({
    status: z.enum(['ready', 'not_ready']),
    redis: z.string(),
    workers: z.number().int(),
    load: z.object({ go: z.string() }).catchall(loadHow).optional(),
    docker: z.string(),
  })
  .strict();
registry.add(readinessSchema, { id: 'Readiness' });

export const keysSchema = z
  .object({
    keys: z.array(
      z
        .object({
          keyid: sha256.describe('sha256 of the DER SubjectPublicKeyInfo, hex'),
          algorithm: z.literal('ecdsa-p256-sha256'),
          publicKey: z.string().startsWith('-----BEGIN PUBLIC KEY-----').describe('PEM, as cosign verify-blob --key reads it'),
          current: z.boolean().describe('the key new signatures are made with; the others signed before a rotation'),
          createdAt: time,
        })
        .strict(),
    ),
  })
  .strict();
registry.add(keysSchema, {
  id: 'Keys',
  description: 'The installation\'s signing keys, current first (docs/provenance.md, "Verify what you downloaded").',
});

export const dsseEnvelopeSchema = z
  .object({
    payloadType: z.literal('application/vnd.in-toto+json'),
    payload: z.base64().describe('the in-toto Statement v1 (SLSA provenance v1), JSON'),
    signatures: z
      .array(z.object({ keyid: sha256, sig: z.base64().describe('ECDSA P-256 SHA-256 over the DSSE PAE, DER, base64') }).strict())
      .min(1),
  })
  .strict();
registry.add(dsseEnvelopeSchema, {
  id: 'DsseEnvelope',
  description: "A build's SLSA v1 provenance, signed (DSSE); `cosign verify-blob-attestation --type slsaprovenance1` reads it.",
});

/** A host release's name: what a file name and a Redis field take, lower-case. */
export const HOST_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** A host release's version, once a leading "v" before a digit is dropped (v2.4.0 and 2.4.0 are one release). */
export const HOST_VERSION_RE = /^[0-9][0-9A-Za-z.+_-]{0,63}$/;

export const hostReleaseSchema = z
  .object({
    name: z.string().regex(HOST_NAME_RE),
    version: z.string().regex(HOST_VERSION_RE),
    scope: z.enum(['tenant', 'installation']).describe("tenant: the caller's own; installation: the operator's, seen by every tenant"),
    registeredAt: time,
    go: z.string().describe("the Go release the host was built with (a binary's exact release, or the one given with its go.mod)"),
    from: z
      .enum(['binary', 'text', 'goMod'])
      .describe('what described it: host executables, the text of `go version -m`, or its go.mod and Go release'),
    trimpath: z.boolean().optional(),
    tags: z.array(z.string()).optional(),
    source: z.url().optional().describe("where its go.mod was fetched from, when it was resolved on first use from the operator's source"),
    modules: z.number().int().describe('how many modules the host links (binary, text) or requires (goMod)'),
    targets: z
      .array(
        z
          .object({ target, sha256, size: z.number().int(), packages: z.number().int().describe('package fingerprints it exports') })
          .strict(),
      )
      .describe('the host executables, one per target'),
  })
  .strict();
registry.add(hostReleaseSchema, {
  id: 'HostRelease',
  description: 'A registered host release (docs/hosts.md); builds name it with hosts=<name>@<version>.',
});

export const hostReleaseListSchema = z.object({ hosts: z.array(hostReleaseSchema) }).strict();
registry.add(hostReleaseListSchema, {
  id: 'HostReleaseList',
  description: "The caller's host releases and the installation's, by name and version.",
});

const watchSchema = z
  .object({
    id: z.string(),
    build: z.string().describe('the build whose source and options are rebuilt'),
    host: z.string().regex(HOST_NAME_RE),
    callback: z.string().optional(),
    createdAt: time,
    builds: z
      .array(
        z
          .object({ release: z.string(), at: time, build: z.string().optional(), error: targetErrorSchema.optional() })
          .strict()
          .describe('a rebuild for a new release, or why it could not start'),
      )
      .describe('the latest rebuilds, newest last'),
  })
  .strict();
registry.add(watchSchema, {
  id: 'Watch',
  description: 'A watch: a build rebuilt for every new release of a host (docs/hosts.md, "Watches").',
});

export const watchListSchema = z.object({ watches: z.array(watchSchema) }).strict();
registry.add(watchListSchema, { id: 'WatchList', description: "The caller's watches." });

const deliverySchema = z
  .object({
    id: z.string(),
    build: z.string(),
    url: z.string(),
    event: z.literal('build.ended'),
    status: z.enum(['pending', 'delivered', 'failed']),
    createdAt: time,
    tries: z.array(
      z.object({ at: time, status: z.number().int().optional(), error: z.string().optional(), durationMs: z.number().int() }).strict(),
    ),
    nextTryAt: time.optional(),
  })
  .strict();
export const deliveryListSchema = z.object({ deliveries: z.array(deliverySchema) }).strict();
registry.add(deliveryListSchema, {
  id: 'DeliveryList',
  description: 'A build\'s callback and each try of it (docs/hosts.md, "Callbacks").',
});

export const callbackSecretSchema = z
  .object({ secret: z.string(), header: z.literal('X-Plugforge-Signature'), algorithm: z.literal('HMAC-SHA256') })
  .strict();
registry.add(callbackSecretSchema, {
  id: 'CallbackSecret',
  description: "The secret the caller's callbacks are signed with: the header holds sha256=<hex HMAC-SHA256 of the body>.",
});

export const compatibilitySchema = z
  .object({
    build: z.string(),
    target,
    sha256,
    host: z.string().regex(HOST_NAME_RE),
    loadsInto: z
      .array(z.string())
      .describe("releases (name@version) registered with this target's executable whose package fingerprints all match the artifact's"),
    refusedBy: z
      .array(
        z
          .object({ release: z.string(), differing: z.array(z.string()).describe('packages whose fingerprints differ, the first 20') })
          .strict(),
      )
      .describe('releases whose executable would refuse it (plugin.Open: "plugin was built with a different version of package …")'),
    notCompared: z
      .array(z.object({ release: z.string(), reason: z.string() }).strict())
      .describe('releases with no fingerprints of this target to compare'),
  })
  .strict();
registry.add(compatibilitySchema, {
  id: 'Compatibility',
  description:
    "Which registered releases of a host an artifact loads into, by the package fingerprints of each release's executable (docs/hosts.md).",
});

export type HostReleaseBody = z.output<typeof hostReleaseSchema>;
export type WatchBody = z.output<typeof watchSchema>;
export type CompatibilityBody = z.output<typeof compatibilitySchema>;
export type HostReleaseListBody = z.output<typeof hostReleaseListSchema>;
export type KeysBody = z.output<typeof keysSchema>;
export type DsseEnvelopeBody = z.output<typeof dsseEnvelopeSchema>;
export type BuildDocumentBody = z.output<typeof buildDocumentSchema>;
export type BuildSummaryBody = z.output<typeof buildSummarySchema>;
export type BuildListBody = z.output<typeof buildListSchema>;
export type ToolchainsBody = z.output<typeof toolchainsSchema>;
export type HealthBody = z.output<typeof healthSchema>;
export type ReadinessBody = z.output<typeof readinessSchema>;
