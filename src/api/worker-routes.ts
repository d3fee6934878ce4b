import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { putThroughTemp } from '../store/blob-hash.js';
import type { ApiDeps } from './api-deps.js';
import { SHA256_HEADER } from './artifact-routes.js';

const SHA256_RE = /^[0-9a-f]{64}$/;

/**
 * The routes of workers that share no disk with the API (docs/deployment.md): a build's
 * source (and a host binary's fingerprints) out, artifacts in, by sha256. Only a worker
 * credential opens them (authenticateWorker), and a worker credential opens nothing else:
 * tenants' routes check tenants' tokens. Both ends check the sha256: the worker of what it
 * reads, the API of what it is given (a body whose bytes are not the sha256 it was put
 * under is refused and not kept, and removes nothing); the store keeps nothing half-received.
 */
export function workerRoutes(deps: ApiDeps): Router {
  const router = Router();
  const worker = authenticateWorker(deps.config.remoteWorkers.tokenHashes);

  router.get('/v1/worker/blobs/:sha256', worker, async (req, res) => {
    const sha256 = blobId(String(req.params.sha256));
    const blob = await deps.store.open(sha256).catch((err: unknown) => {
      throw (err as PlugforgeError).code === 'blob_missing'
        ? new PlugforgeError('blob_not_found', `No blob ${sha256} in the store (swept by retention, or never stored).`, { status: 404 })
        : err;
    });
    res.status(200).set({ 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.size), [SHA256_HEADER]: sha256 });
    blob.stream.pipe(res);
    await new Promise<void>((resolve) => res.on('close', resolve));
    blob.stream.destroy();
  });

  // The body is checked before it is adopted: a mismatch discards it and never touches a
  // stored blob (the body's own sha256 may be another build's good artifact).
  router.put('/v1/worker/blobs/:sha256', worker, async (req, res) => {
    const sha256 = blobId(String(req.params.sha256));
    const stored = await putThroughTemp(deps.store, req, deps.config.build.maxArtifactBytes, (blob) => {
      if (blob.sha256 !== sha256) {
        throw new PlugforgeError(
          'blob_sha256_mismatch',
          `The body's sha256 is ${blob.sha256}, not ${sha256} it was put under; nothing was kept. Send it again.`,
          { status: 422, retryable: true },
        );
      }
    });
    res.status(201).json(stored);
  });

  return router;
}

function blobId(text: string | undefined): string {
  if (!text || !SHA256_RE.test(text))
    throw new PlugforgeError('bad_blob_id', `"${text ?? ''}" is not a sha256 (64 lower-case hex digits).`, { status: 400 });
  return text;
}

/**
 * Lets a request on /v1/worker/… through only with `Authorization: Bearer <credential>`
 * whose sha256 is one of PLUGFORGE_WORKER_TOKENS, compared in constant time; with none
 * configured, the API takes no such workers at all.
 */
export function authenticateWorker(hashes: readonly Buffer[]): RequestHandler {
  return (req, res, next) => {
    // A refused upload's body is not read: the connection closes after the answer.
    res.setHeader('Connection', 'close');
    if (!hashes.length) {
      throw new PlugforgeError(
        'workers_not_enabled',
        'This API takes no workers without its data directory: give it PLUGFORGE_WORKER_TOKENS (the sha256 of each worker credential), and the worker PLUGFORGE_API_URL and PLUGFORGE_WORKER_TOKEN.',
        { status: 403 },
      );
    }
    const presented = /^Bearer +([\x21-\x7e]+) *$/i.exec(req.headers.authorization ?? '')?.[1];
    const hash = createHash('sha256')
      .update(presented ?? '', 'utf8')
      .digest();
    let ok = false;
    for (const h of hashes) ok = (h.length === hash.length && timingSafeEqual(h, hash)) || ok;
    if (presented && ok) {
      res.removeHeader('Connection');
      return next();
    }
    throw new PlugforgeError(
      'worker_unauthorized',
      'A worker credential is needed here ("Authorization: Bearer <PLUGFORGE_WORKER_TOKEN>", one whose sha256 is in the API\'s PLUGFORGE_WORKER_TOKENS).',
      { status: 401 },
    );
  };
}
