import { z } from 'zod';
import {
  buildDocumentSchema,
  buildListSchema,
  dsseEnvelopeSchema,
  errorBodySchema,
  healthSchema,
  HOST_NAME_RE,
  hostReleaseListSchema,
  hostReleaseSchema,
  keysSchema,
  readinessSchema,
  registry,
  toolchainsSchema,
} from '../contract/api-schemas.js';
import { listQuerySchema } from '../builds/build-list.js';
import { ALL_TARGET_IDS } from '../contract/targets.js';
import { optionsSchema } from './build-options.js';
import { logQuerySchema } from './log-routes.js';

/**
 * GET /v1/openapi.json: the API as OpenAPI 3.1, generated from the zod schemas that check
 * the requests (build options, the list's query, the log's query) and type the responses
 * (src/contract/api-schemas.ts). Every route of src/api is here; test/openapi.test.ts holds the
 * routes, the document and real responses to it.
 */
export function openApiDocument(version: string): Record<string, unknown> {
  const { schemas } = z.toJSONSchema(registry, { target: 'draft-2020-12', uri: (id) => `#/components/schemas/${id}` });
  const components = Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, withoutKeys(s, ['$schema', '$id'])]));
  return {
    openapi: '3.1.0',
    info: {
      title: 'plugforge',
      version,
      description:
        'Builds Go plugins for linux amd64, arm-7, arm64 and 386 with the exact toolchain of their host, and proves they load. README.md of the repository describes every route.',
    },
    components: {
      schemas: components,
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'A tenant token, when the server has tokens configured (PLUGFORGE_TOKENS); else none is needed.',
        },
        worker: {
          type: 'http',
          scheme: 'bearer',
          description: 'A worker credential (PLUGFORGE_WORKER_TOKENS on the API): opens /v1/worker/… and nothing else.',
        },
        operator: {
          type: 'http',
          scheme: 'bearer',
          description:
            "An operator token (PLUGFORGE_OPERATOR_TOKENS on the API): opens /v1/hosts… only, acting on the installation's host releases.",
        },
      },
    },
    security: [{}, { bearer: [] }],
    paths: PATHS,
  };
}

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (id: string, description: string) => ({ description, content: { 'application/json': { schema: ref(id) } } });
const errors = {
  '4XX': json('Error', 'Refused: the error code and what to do'),
  '5XX': json('Error', 'The service could not do it now (retryable ones say so)'),
};
const binary = (description: string, type = 'application/octet-stream') => ({
  description,
  content: { [type]: { schema: { type: 'string', contentMediaType: type } } },
});

/** Query parameters from a zod object schema: its fields, their JSON Schemas, none required unless the schema says so. */
function queryParameters(schema: z.ZodObject): Record<string, unknown>[] {
  return Object.entries(schema.shape).map(([name, field]) => {
    const s = withoutKeys(z.toJSONSchema(field as z.ZodType, { target: 'draft-2020-12', unrepresentable: 'any' }), ['$schema']);
    return { name, in: 'query', required: !(field as z.ZodType).safeParse(undefined).success, schema: s };
  });
}

const id = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9]{1,40}$' } };
const target = { name: 'target', in: 'path', required: true, schema: { type: 'string', enum: [...ALL_TARGET_IDS] } };
const hostName = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: HOST_NAME_RE.source } };
const hostVersion = {
  name: 'version',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^v?[0-9][0-9A-Za-z.+_-]{0,63}$' },
  description: 'a leading v before a digit is dropped: v2.4.0 and 2.4.0 are one release',
};
const hostsSecurity = [{}, { bearer: [] }, { operator: [] }];
const sha256Header = { description: 'the sha256 of the bytes', schema: { type: 'string', pattern: '^[0-9a-f]{64}$' } };

const PATHS = {
  '/': {
    get: {
      summary: 'The web page: builds, their targets, logs and downloads, and a form to submit one (docs/web-page.md)',
      security: [{}],
      responses: { '200': { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } }, ...errors },
    },
  },
  '/assets/{file}': {
    get: {
      summary: "The web page's script and style sheet",
      security: [{}],
      parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
      responses: {
        '200': {
          description: 'The file',
          content: { 'text/javascript': { schema: { type: 'string' } }, 'text/css': { schema: { type: 'string' } } },
        },
        ...errors,
      },
    },
  },
  '/healthz': { get: { summary: 'The process answers', responses: { '200': json('Health', 'Alive') } } },
  '/readyz': {
    get: {
      summary: 'Redis answers and a worker with a Docker engine reports in',
      responses: { '200': json('Readiness', 'Ready'), '503': json('Readiness', 'Not ready: what is missing') },
    },
  },
  '/metrics': {
    get: {
      summary: 'Prometheus metrics',
      responses: { '200': { description: 'The text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } },
    },
  },
  '/v1/openapi.json': {
    get: {
      summary: 'This description',
      responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
  },
  '/v1/toolchains': {
    get: {
      summary: 'Go releases × targets the workers have images for',
      responses: { '200': json('Toolchains', 'The toolchains'), ...errors },
    },
  },
  '/v1/builds': {
    post: {
      summary: 'Submit a build',
      parameters: [
        ...queryParameters(optionsSchema),
        {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          schema: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$' },
          description:
            "one per build meant: a submission with a key the caller's tenant used in the last day gets that build back (202, Idempotent-Replayed: true), its body unread; 409 idempotency_key_in_use while the first is still arriving",
        },
      ],
      requestBody: {
        required: true,
        content: {
          'application/gzip': {
            schema: { type: 'string', contentMediaType: 'application/gzip', description: "the plugin's source as a gzip'd tar" },
          },
          'multipart/form-data': {
            schema: {
              type: 'object',
              required: ['source'],
              properties: {
                source: { type: 'string', contentMediaType: 'application/gzip' },
                hostBinary: {
                  type: 'array',
                  maxItems: 4,
                  items: { type: 'string', contentMediaType: 'application/octet-stream' },
                  description: 'host executables (one per target) or one `go version -m` text',
                },
                ...Object.fromEntries(queryParameters(optionsSchema).map((p) => [p.name as string, p.schema])),
              },
            },
          },
        },
      },
      responses: {
        '202': {
          ...json('Build', 'Accepted: the build document'),
          headers: {
            Location: { schema: { type: 'string' }, description: 'the build document' },
            'Idempotent-Replayed': {
              schema: { type: 'string', enum: ['true'] },
              description: 'the build an earlier try with this Idempotency-Key started',
            },
          },
        },
        ...errors,
      },
    },
    get: {
      summary: "The caller's builds, newest first",
      parameters: queryParameters(listQuerySchema),
      responses: { '200': json('BuildList', 'One page'), ...errors },
    },
  },
  '/v1/builds/{id}': {
    parameters: [id],
    get: { summary: 'The build document', responses: { '200': json('Build', 'The build'), ...errors } },
    delete: { summary: 'Cancel the build', responses: { '202': json('Build', 'Canceled'), ...errors } },
  },
  '/v1/builds/{id}/logs': {
    parameters: [id],
    get: {
      summary:
        "The build's log; followed until the build ends with follow=1 (SSE with Accept: text/event-stream: `log` events, one line each; `target` {target, status} as each target ends; `end` {status} last)",
      parameters: queryParameters(logQuerySchema),
      responses: {
        '200': {
          description: 'Lines prefixed [target] unless one target is asked for',
          content: { 'text/plain': { schema: { type: 'string' } }, 'text/event-stream': { schema: { type: 'string' } } },
        },
        ...errors,
      },
    },
  },
  '/v1/builds/{id}/artifacts/{target}/compatibility': {
    parameters: [id, target, { name: 'host', in: 'query', required: true, schema: { type: 'string', pattern: HOST_NAME_RE.source } }],
    get: {
      summary: "Which registered releases of a host the artifact loads into (the caller's and the installation's)",
      responses: {
        '200': json('Compatibility', 'The releases it loads into, those that refuse it, and those without fingerprints'),
        ...errors,
      },
    },
  },
  '/v1/builds/{id}/artifacts/{target}': {
    parameters: [
      id,
      target,
      {
        name: 'host',
        in: 'query',
        required: false,
        schema: { type: 'string' },
        description: "a matrix build's cell: the release (name@version) whose artifact of the target, under its name",
      },
    ],
    get: {
      summary: "A target's artifact",
      responses: {
        '200': {
          ...binary('The artifact (one that failed verification can still be downloaded: see X-Plugforge-Verify)'),
          headers: {
            'X-Plugforge-Sha256': sha256Header,
            'X-Plugforge-Verify': {
              description: "the target's verification",
              schema: { type: 'string', enum: ['passed', 'failed', 'skipped'] },
            },
            ETag: { description: 'the sha256, quoted', schema: { type: 'string' } },
          },
        },
        ...errors,
      },
    },
  },
  '/v1/builds/{id}/artifacts/{target}/sbom': {
    parameters: [id, target],
    get: {
      summary: "The artifact's SBOM, CycloneDX 1.5, from its own Go build info",
      responses: {
        '200': { description: 'CycloneDX JSON', content: { 'application/vnd.cyclonedx+json': { schema: { type: 'object' } } } },
        ...errors,
      },
    },
  },
  '/v1/builds/{id}/artifacts/{target}/signature': {
    parameters: [id, target],
    get: {
      summary: "The artifact's signature: ECDSA P-256 over its bytes (SHA-256), DER, base64, as cosign verify-blob --signature reads it",
      responses: {
        '200': {
          description: 'One line of base64',
          headers: {
            'X-Plugforge-Key-Id': {
              description: 'the key that signed it (GET /v1/keys)',
              schema: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            },
          },
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
        ...errors,
      },
    },
  },
  '/v1/builds/{id}/provenance': {
    parameters: [id],
    get: {
      summary:
        "The build's SLSA v1 provenance (an in-toto statement naming every artifact), signed as a DSSE envelope; 409 until the build has ended with artifacts",
      responses: { '200': json('DsseEnvelope', 'The envelope'), ...errors },
    },
  },
  '/v1/watches': {
    post: {
      summary:
        'Watch a host: rebuild one of your builds for every release of it registered or resolved from now on (docs/hosts.md, "Watches")',
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['build', 'host'],
              properties: {
                build: { type: 'string', pattern: '^[a-z0-9]{1,40}$' },
                host: { type: 'string', pattern: HOST_NAME_RE.source },
                callback: { type: 'string', format: 'uri', description: "where each rebuild's summary is POSTed once it has ended" },
              },
            },
          },
        },
      },
      responses: { '201': json('Watch', 'Watching'), ...errors },
    },
    get: { summary: "The caller's watches and their last rebuilds", responses: { '200': json('WatchList', 'The watches'), ...errors } },
  },
  '/v1/watches/{id}': {
    parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
    delete: { summary: 'Stop watching', responses: { '204': { description: 'Removed' }, ...errors } },
  },
  '/v1/builds/{id}/deliveries': {
    parameters: [id],
    get: { summary: "The build's callback and each try of it", responses: { '200': json('DeliveryList', 'The deliveries'), ...errors } },
  },
  '/v1/callbacks/secret': {
    get: {
      summary: "The secret the caller's callbacks are signed with (HMAC-SHA256 of the body, in X-Plugforge-Signature)",
      responses: { '200': json('CallbackSecret', 'The secret'), ...errors },
    },
  },
  '/v1/hosts': {
    post: {
      summary:
        "Register a host release by name and version, described by its executables, its `go version -m` text, or its go.mod and Go release (docs/hosts.md); the caller's own, or with an operator token the installation's",
      security: hostsSecurity,
      requestBody: {
        required: true,
        content: {
          'multipart/form-data': {
            schema: {
              type: 'object',
              required: ['name', 'version'],
              properties: {
                name: { type: 'string', pattern: HOST_NAME_RE.source },
                version: { type: 'string', pattern: '^v?[0-9][0-9A-Za-z.+_-]{0,63}$' },
                hostBinary: {
                  type: 'array',
                  maxItems: 4,
                  items: { type: 'string', contentMediaType: 'application/octet-stream' },
                  description: 'host executables (one per target) or one `go version -m` text',
                },
                hostGoMod: { type: 'string', description: "the host's go.mod (with go)" },
                go: {
                  type: 'string',
                  pattern: '^(go)?\\d+\\.\\d+(\\.\\d+)?$',
                  description: 'the Go release the host is built with; with hostGoMod only',
                },
              },
            },
          },
        },
      },
      responses: {
        '201': { ...json('HostRelease', 'Registered'), headers: { Location: { schema: { type: 'string' }, description: 'the release' } } },
        ...errors,
      },
    },
    get: {
      summary: "The caller's host releases and the installation's (the operator: the installation's)",
      security: hostsSecurity,
      parameters: [{ name: 'name', in: 'query', required: false, schema: { type: 'string', pattern: HOST_NAME_RE.source } }],
      responses: { '200': json('HostReleaseList', 'The releases'), ...errors },
    },
  },
  '/v1/hosts/{name}/{version}': {
    parameters: [hostName, hostVersion],
    get: {
      summary: "A host release: the caller's own, else the installation's",
      security: hostsSecurity,
      responses: { '200': json('HostRelease', 'The release'), ...errors },
    },
    delete: {
      summary: "Remove a host release of the caller's scope (the operator: the installation's)",
      security: hostsSecurity,
      responses: { '204': { description: 'Removed' }, ...errors },
    },
  },
  '/v1/keys': {
    get: {
      summary: "The installation's public keys (current and earlier), open without a token",
      security: [{}],
      responses: { '200': json('Keys', 'The keys') },
    },
  },
  '/v1/keys/openpgp': {
    get: {
      summary:
        "The current key as an ASCII-armored OpenPGP public key (what Mattermost's plugin signature check takes), open without a token",
      security: [{}],
      responses: { '200': binary('The public key block', 'application/pgp-keys') },
    },
  },
  '/v1/worker/blobs/{sha256}': {
    parameters: [{ name: 'sha256', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-f]{64}$' } }],
    get: {
      summary: "For workers without the data directory: a blob (a source, a host binary's fingerprints) by sha256",
      security: [{ worker: [] }],
      responses: { '200': { ...binary('The blob'), headers: { 'X-Plugforge-Sha256': sha256Header } }, ...errors },
    },
    put: {
      summary: 'For workers without the data directory: an artifact, stored under its sha256 only if its bytes have it',
      security: [{ worker: [] }],
      requestBody: {
        required: true,
        content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
      },
      responses: {
        '201': {
          description: 'Stored',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: { sha256: { type: 'string' }, size: { type: 'integer' } },
                required: ['sha256', 'size'],
              },
            },
          },
        },
        ...errors,
      },
    },
  },
  '/v1/builds/{id}/artifacts.tar.gz': {
    parameters: [id],
    get: {
      summary: 'Every artifact with its .sig and .cdx.json, provenance.intoto.jsonl, SHA256SUMS and build.json',
      responses: { '200': binary("A gzip'd tar", 'application/gzip'), ...errors },
    },
  },
  '/v1/builds/{id}/bundle.tar.gz': {
    parameters: [id],
    get: {
      summary: 'A Mattermost-style bundle (mode=exe with a plugin.json), with the provenance and signatures in server/dist/',
      responses: { '200': binary("A gzip'd tar", 'application/gzip'), ...errors },
    },
  },
  '/v1/builds/{id}/bundle.tar.gz.sig': {
    parameters: [id],
    get: {
      summary:
        "The bundle's detached OpenPGP signature, by the installation's key (GET /v1/keys/openpgp), as Mattermost verifies plugin bundles",
      responses: { '200': binary('A binary OpenPGP signature packet', 'application/pgp-signature'), ...errors },
    },
  },
};

function withoutKeys<T extends object>(o: T, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

// The schemas every response of PATHS names: registered (and so in components) by importing them.
void [
  buildDocumentSchema,
  buildListSchema,
  dsseEnvelopeSchema,
  errorBodySchema,
  healthSchema,
  hostReleaseSchema,
  hostReleaseListSchema,
  keysSchema,
  readinessSchema,
  toolchainsSchema,
];
