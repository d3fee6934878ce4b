import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type Request, type RequestHandler } from 'express';
import { HostReleases, storeHostFingerprints, type HostScope, type ReleaseDescription } from '../builds/host-releases.js';
import type { HostReleaseBody, HostReleaseListBody } from '../contract/api-schemas.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { hostModulesFromGoMod } from '../host/host-match.js';
import { describeHostBinaries } from '../host/host-request.js';
import type { ApiDeps } from './api-deps.js';
import { authenticate } from './auth.js';
import { expectsContinue } from './expect-continue.js';
import { hostRelease } from './build-options.js';
import { receiveHostForm, uploadLimitsOf, type ReceivedHostForm } from './source-upload.js';
import { tenantOf } from './tenancy.js';

/** The Go release given with a host's go.mod: what the build option `go` takes. */
const GO_RE = /^(go)?\d+\.\d+(\.\d+)?$/;
/** The fields of POST /v1/hosts beside its parts (a hostGoMod part is read into its field). */
const FORM_FIELDS = new Set(['name', 'version', 'go', 'hostGoMod']);

const operators = new WeakSet<Request>();

/**
 * Host releases by name (docs/hosts.md): POST /v1/hosts registers one, GET lists them,
 * GET and DELETE /v1/hosts/:name/:version read and remove one. A tenant's token acts on the
 * tenant's own releases; an operator token (PLUGFORGE_OPERATOR_TOKENS) on the
 * installation's, which every tenant sees. The operator token opens these routes and no
 * other: every other route checks tenants' tokens only (SECURITY.md).
 */
export function hostRoutes(deps: ApiDeps, onAdded?: (scope: HostScope, name: string, version: string) => void): Router {
  const router = Router();
  const { config, store, metrics } = deps;
  const releases = new HostReleases(deps.redis, config.queueName, store, config.hosts.maxPerTenant, onAdded);
  const caller = authenticateHostsCaller(config.hosts.operatorTokenHashes, authenticate(config.tenancy.tokens));

  router.post('/v1/hosts', caller, async (req, res) => {
    if (deps.redis.status !== 'ready') {
      res.setHeader('Connection', 'close');
      throw new PlugforgeError('redis_unavailable', 'Redis is unreachable; try again shortly.', { status: 503, retryable: true });
    }
    const scope = scopeOf(req);
    // The caller is known: now the client may send the executables (app.ts holds back 100 until here).
    if (expectsContinue(req)) res.writeContinue();
    const form = await receiveHostForm(
      req,
      uploadLimitsOf(config),
      (n) => metrics.uploadBytes.inc(n),
      scope.kind === 'tenant' ? scope.tenant : '(operator)',
    ).catch((err: unknown) => {
      res.setHeader('Connection', 'close');
      throw err;
    });
    const { doc, description } = await describeRelease(form, deps);
    const registered = await releases.add(scope, doc, description);
    deps.log.info(
      { host: `${doc.name}@${doc.version}`, scope: scope.kind === 'tenant' ? scope.tenant : 'installation', from: doc.from },
      'host release registered',
    );
    res
      .status(201)
      .location(`/v1/hosts/${doc.name}/${doc.version}`)
      .json(registered satisfies HostReleaseBody);
  });

  router.get('/v1/hosts', caller, async (req, res) => {
    const unknown = Object.keys(req.query).filter((k) => k !== 'name');
    if (unknown.length)
      throw new PlugforgeError(
        'unknown_option',
        `Unknown query parameter ${unknown.map((k) => `"${k}"`).join(', ')}; GET /v1/hosts takes only name.`,
      );
    const name = req.query.name;
    if (name !== undefined && typeof name !== 'string') throw new PlugforgeError('invalid_option', 'Give "name" once.');
    if (name !== undefined) hostRelease(name, '0');
    res.json({ hosts: await releases.list(visibleScopes(req), name) } satisfies HostReleaseListBody);
  });

  router.get('/v1/hosts/:name/:version', caller, async (req, res) => {
    const { name, version } = hostRelease(String(req.params.name), String(req.params.version));
    const scope = scopeOf(req);
    const stored =
      scope.kind === 'installation' ? await releases.get(scope, name, version) : await releases.find(scope.tenant, name, version);
    if (!stored) throw unknownRelease(name, version, scope);
    const { descriptionBlob: _, ...doc } = stored;
    res.json(doc satisfies HostReleaseBody);
  });

  router.delete('/v1/hosts/:name/:version', caller, async (req, res) => {
    const { name, version } = hostRelease(String(req.params.name), String(req.params.version));
    const scope = scopeOf(req);
    if (!(await releases.remove(scope, name, version))) throw unknownRelease(name, version, scope);
    deps.log.info({ host: `${name}@${version}`, scope: scope.kind === 'tenant' ? scope.tenant : 'installation' }, 'host release removed');
    res.status(204).end();
  });

  return router;
}

/** Whose releases a request acts on: the operator's token, the installation's; else its tenant's. */
function scopeOf(req: Request): HostScope {
  return operators.has(req) ? { kind: 'installation' } : { kind: 'tenant', tenant: tenantOf(req) };
}

/** What a request may see: a tenant its own and the installation's; the operator the installation's. */
function visibleScopes(req: Request): HostScope[] {
  const scope = scopeOf(req);
  return scope.kind === 'installation' ? [scope] : [scope, { kind: 'installation' }];
}

function unknownRelease(name: string, version: string, scope: HostScope): PlugforgeError {
  const whose = scope.kind === 'installation' ? 'for the installation' : `for tenant ${scope.tenant}${' or for the installation'}`;
  return new PlugforgeError(
    'host_release_unknown',
    `No host release ${name}@${version} is registered ${whose}. \`plugforge hosts list\` shows the registered ones; \`plugforge hosts add --name ${name} --version ${version} --binary <host executable>\` registers it.`,
    { status: 404 },
  );
}

/**
 * An operator token (one whose sha256 is in PLUGFORGE_OPERATOR_TOKENS, compared with every
 * configured hash in constant time) marks the request as the operator's; any other request
 * goes through the tenants' authentication as on every route.
 */
function authenticateHostsCaller(hashes: readonly Buffer[], tenants: RequestHandler): RequestHandler {
  return (req, res, next) => {
    const presented = /^Bearer +([\x21-\x7e]+) *$/i.exec(req.headers.authorization ?? '')?.[1];
    if (presented !== undefined && hashes.length) {
      const hash = createHash('sha256').update(presented, 'utf8').digest();
      let ok = false;
      for (const h of hashes) ok = (h.length === hash.length && timingSafeEqual(h, hash)) || ok;
      if (ok) {
        operators.add(req);
        return next();
      }
    }
    tenants(req, res, next);
  };
}

/** A release's document before it is registered (scope and time are the registration's), and what it keeps. */
type DescribedRelease = { doc: Omit<HostReleaseBody, 'scope' | 'registeredAt'>; description: ReleaseDescription };

/**
 * The release's document and its stored description, from the form: its name and version,
 * and its hostBinary parts read as a build reads them (describeHostBinaries: every cap and
 * error code of a build's), or its go.mod (hostModulesFromGoMod) and Go release.
 */
async function describeRelease(form: ReceivedHostForm, deps: ApiDeps): Promise<DescribedRelease> {
  const { fields } = form;
  try {
    const unknown = Object.keys(fields).filter((k) => !FORM_FIELDS.has(k));
    if (unknown.length)
      throw new PlugforgeError(
        'unknown_option',
        `Unknown field ${unknown.map((k) => `"${k}"`).join(', ')}; a host release takes name, version, go, and hostBinary or hostGoMod parts.`,
      );
    const release = hostRelease(fields.name ?? '', fields.version ?? '');
    if (form.hostBinaries.length && fields.hostGoMod !== undefined) {
      throw new PlugforgeError(
        'host_described_twice',
        'Give the host release as hostGoMod (with go) or as hostBinary, not both: the binary already names the modules it links.',
      );
    }
    if (form.hostBinaries.length) return await describedByBinaries(form, deps, release);
    if (fields.hostGoMod === undefined) {
      throw new PlugforgeError(
        'host_missing',
        'Describe the host release: hostBinary parts (its executables, one per target, or the text of `go version -m`), or a hostGoMod part with a go field (its go.mod and Go release).',
      );
    }
    if (fields.go === undefined || !GO_RE.test(fields.go)) {
      throw new PlugforgeError(
        'invalid_option',
        `Field "go" ${fields.go === undefined ? 'is missing' : 'must be a Go release such as 1.22 or 1.22.12'}: a host release given by its go.mod needs the Go release it is built with (gotify's GO_VERSION).`,
      );
    }
    const go = fields.go.replace(/^go/, '');
    const modules = hostModulesFromGoMod(fields.hostGoMod).modules.length;
    return { doc: { ...release, go, from: 'goMod', modules, targets: [] }, description: { from: 'goMod', goMod: fields.hostGoMod, go } };
  } finally {
    form.release();
  }
}

/** A release described by its executables or its `go version -m` text: each part read, the executables' fingerprints stored. */
async function describedByBinaries(
  form: ReceivedHostForm,
  deps: ApiDeps,
  release: { name: string; version: string },
): Promise<DescribedRelease> {
  if (form.fields.go !== undefined) {
    throw new PlugforgeError(
      'invalid_option',
      'Leave "go" out with hostBinary parts: the Go release is taken from the binary\'s build info.',
    );
  }
  const parts = describeHostBinaries(form.hostBinaries.map((p) => (Buffer.isBuffer(p) ? { bytes: p } : p)));
  // What is kept of the executables is read: their memory goes back to the budget now.
  form.release();
  const first = parts[0]!.host;
  const refs = await storeHostFingerprints(
    deps.store,
    parts.flatMap((p) => (p.binary ? [p.binary] : [])),
  );
  const description: ReleaseDescription = {
    from: refs.length ? 'binary' : 'text',
    parts: parts.map((p) => ({ host: p.host, ...(p.binary ? { binary: refs.find((r) => r.target === p.binary!.target)! } : {}) })),
  };
  const targets = refs.map(({ target, sha256, size, packages }) => ({ target, sha256, size, packages }));
  const { go, trimpath, tags } = first;
  return { doc: { ...release, go, from: description.from, trimpath, tags, modules: first.modules.length, targets }, description };
}
