import express from 'express';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { ApiDeps } from './api-deps.js';
import { artifactRoutes } from './artifact-routes.js';
import { authenticate } from './auth.js';
import { buildRoutes } from './build-routes.js';
import { SubmissionService } from './submission.js';
import { Watches, watchRoutes } from './watches.js';
import type { HostScope } from '../builds/host-releases.js';
import { hostRoutes } from './host-routes.js';
import { compatibilityRoutes } from './compatibility-routes.js';
import { expectsContinue } from './expect-continue.js';
import { errorHandler, sendError } from './http-errors.js';
import { logRoutes } from './log-routes.js';
import { EvidenceCache } from '../provenance/build-evidence.js';
import { keyRoutes, provenanceRoutes } from './provenance-routes.js';
import { SigningKeys } from '../provenance/signing-keys.js';
import { systemRoutes } from './system-routes.js';
import { workerRoutes } from './worker-routes.js';
import { webRoutes } from './web-routes.js';

/** The REST API v1 (README "The API in a few curl lines"), as an express app. */
export function createApp(deps: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    // Logs, signatures and errors carry text a tenant wrote: no browser may sniff them into
    // HTML or script (headers set here stay when a route calls writeHead).
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const started = Date.now();
    res.on('finish', () => {
      const route = (req.route?.path as string | undefined) ?? 'unmatched';
      deps.metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
      deps.log.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Date.now() - started }, 'request');
    });
    next();
  });

  // Expect: 100-continue (the server hands such requests to the app, see serve-command.ts):
  // 100 is sent only when the body is wanted. POST /v1/builds sends it itself once the
  // token, the options and the tenant's limit have passed, so a refusal costs the client
  // no upload (POST /v1/hosts once its caller is known); other routes read no body worth
  // waiting for and get it at once.
  app.use((req, res, next) => {
    if (expectsContinue(req) && !(req.method === 'POST' && (req.path === '/v1/builds' || req.path === '/v1/hosts'))) res.writeContinue();
    next();
  });
  // The web page itself is open: it holds no data and asks for a token when the API answers 401.
  app.use(webRoutes());
  // Public keys are open too: whoever was handed an artifact checks it without a token.
  // A signature is made once per content and key, then given again: downloads stay the same bytes.
  const retentionDays = Math.ceil(deps.config.retention.maxAgeMs / 86_400_000);
  const signing = SigningKeys.open(deps.config, deps.log).rememberIn(
    deps.redis,
    `pf:${deps.config.queueName}`,
    retentionDays ? (retentionDays + 1) * 86_400 : 0,
  );
  app.use(keyRoutes(signing));
  // Workers without the data directory: their own credential, never a tenant's (worker-routes.ts).
  app.use(workerRoutes(deps));
  // Host releases: a tenant's token, or the operator's, which opens these routes alone (host-routes.ts).
  // A release registered or resolved rebuilds what watches its host (docs/hosts.md, "Watches"), after the answer.
  const onReleaseAdded = (scope: HostScope, name: string, version: string) =>
    setImmediate(() => {
      watches
        ?.onRelease(scope, name, version)
        .catch((err: Error) => deps.log.warn({ err: err.message }, 'watches: a release was not handled'));
    });
  const submissions = new SubmissionService(deps, onReleaseAdded);
  const watches = new Watches(deps, submissions);
  app.use(hostRoutes(deps, onReleaseAdded));
  app.use(authenticate(deps.config.tenancy.tokens));
  app.use(systemRoutes(deps));
  app.use(buildRoutes(deps, submissions));
  app.use(watchRoutes(deps, watches));
  app.use(logRoutes(deps));
  const evidence = new EvidenceCache(deps.store, signing, deps.config.publicUrl);
  app.use(compatibilityRoutes(deps));
  app.use(artifactRoutes(deps, evidence));
  app.use(provenanceRoutes(deps, evidence));

  app.use((req, res) => {
    sendError(
      res,
      new PlugforgeError('not_found', `No route ${req.method} ${req.path}. The API is described in README.md.`, { status: 404 }),
    );
  });
  app.use(errorHandler(deps.log));
  return app;
}
