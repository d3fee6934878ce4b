import { Router } from 'express';
import { completeVersions } from '../images/image-catalog.js';
import { TARGET_IDS } from '../contract/targets.js';
import { catalogFromWorkers, loadingFromWorkers, type ApiDeps } from './api-deps.js';
import { imageTag } from '../images/image-tags.js';
import type { HealthBody, ReadinessBody, ToolchainsBody } from '../contract/api-schemas.js';
import { PACKAGE_VERSION } from '../revision.js';
import { openApiDocument } from './openapi.js';

export function systemRoutes(deps: ApiDeps): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: PACKAGE_VERSION } satisfies HealthBody);
  });

  /**
   * Ready when Redis answers and at least one worker with a reachable Docker engine reports
   * in. Open to anyone, so it answers states only: the errors (addresses, engine messages)
   * go to the process log, where the operator looks (docs/deployment.md).
   */
  router.get('/readyz', async (_req, res) => {
    let redis = 'ok';
    let workers: Awaited<ReturnType<typeof deps.registry.live>> = [];
    try {
      await deps.redis.ping();
      workers = await deps.registry.live();
    } catch (err) {
      redis = 'unreachable';
      deps.log.warn({ err: (err as Error).message }, 'readiness: Redis unreachable');
    }
    const docker = workers.filter((w) => w.dockerReachable);
    const ready = redis === 'ok' && docker.length > 0;
    // How the workers load each target's plugins (the default Go release's images), for verification.
    const catalog = catalogFromWorkers(workers, deps.config.imageRepo);
    const defaultGo = completeVersions(catalog, []).find((v) => v === deps.config.defaultGo || v.startsWith(`${deps.config.defaultGo}.`));
    const loading = loadingFromWorkers(workers);
    const load = defaultGo
      ? Object.fromEntries(
          TARGET_IDS.flatMap((t) => {
            const how = loading.get(imageTag(deps.config.imageRepo, defaultGo, t));
            return how ? [[t, how]] : [];
          }),
        )
      : {};
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'not_ready',
      redis,
      workers: workers.length,
      ...(defaultGo ? { load: { go: defaultGo, ...load } } : {}),
      // Each worker logs its own engine's error (build-worker.ts).
      docker: docker.length
        ? 'ok'
        : workers.length
          ? 'unreachable from every worker'
          : 'no worker is running (start one: plugforge worker)',
    } satisfies ReadinessBody);
  });

  router.get('/v1/toolchains', async (_req, res) => {
    const workers = await deps.registry.live();
    const catalog = catalogFromWorkers(workers, deps.config.imageRepo);
    const loading = loadingFromWorkers(workers);
    const versions = [...new Set(catalog.images.map((i) => i.go))];
    const toolchains = completeVersions(catalog, [])
      .filter((v) => versions.includes(v))
      .map((go) => ({
        go,
        targets: TARGET_IDS.filter((t) => catalog.images.some((i) => i.go === go && i.target === t)),
        images: Object.fromEntries(catalog.images.filter((i) => i.go === go).map((i) => [i.target, i.image])),
        // Where the Go of these images came from (debian or go-release); the cross images start
        // FROM linux-amd64, so it is that image's. The two can differ in std package hashes.
        source:
          (catalog.images.find((i) => i.go === go && i.target === 'linux-amd64') ?? catalog.images.find((i) => i.go === go))?.source ??
          'unknown',
        // How the loading probe runs each target's plugins on the workers (verify "skipped" where unavailable).
        load: Object.fromEntries(
          catalog.images.filter((i) => i.go === go && loading.has(i.image)).map((i) => [i.target, loading.get(i.image)]),
        ),
      }));
    res.json({ repo: catalog.repo, defaultGo: deps.config.defaultGo, toolchains } satisfies ToolchainsBody);
  });

  const openApi = openApiDocument(PACKAGE_VERSION);
  router.get('/v1/openapi.json', (_req, res) => {
    res.json(openApi);
  });

  router.get('/metrics', async (_req, res) => {
    res.set('Content-Type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  return router;
}
