import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { TenantToken } from '../config.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { sendError } from './http-errors.js';
import { setTenant } from './tenancy.js';

/** Probes and metrics stay open: orchestrators and Prometheus carry no token. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Authenticates `Authorization: Bearer <token>` against the configured token hashes and
 * records the request's tenant. Without configured tokens every request is tenant "public".
 * The token is hashed and compared with every configured hash in constant time, so the
 * answer's timing says nothing about how close a guess came. A refused request is answered
 * before its body is read, and its connection is closed so the body is not read either.
 */
export function authenticate(tokens: readonly TenantToken[] | undefined): RequestHandler {
  return (req, res, next) => {
    if (!tokens) {
      setTenant(req, 'public', false);
      return next();
    }
    if (OPEN_PATHS.has(req.path)) return next();
    const header = req.headers.authorization;
    const presented = header === undefined ? undefined : /^Bearer +([\x21-\x7e]+) *$/i.exec(header)?.[1];
    const tenant = presented === undefined ? undefined : tenantOfToken(tokens, presented);
    if (tenant === undefined) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="plugforge"');
      if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)
        res.setHeader('Connection', 'close');
      const message =
        header === undefined
          ? 'This server needs an API token: send it as "Authorization: Bearer <token>".'
          : presented === undefined
            ? 'The Authorization header must be "Bearer <token>".'
            : 'The API token is not valid. Check it, or ask the operator for one.';
      return sendError(res, new PlugforgeError('unauthorized', message, { status: 401 }));
    }
    setTenant(req, tenant, true);
    next();
  };
}

/** The tenant whose token hash matches, looked at for every configured token whatever the outcome. */
function tenantOfToken(tokens: readonly TenantToken[], token: string): string | undefined {
  const hash = createHash('sha256').update(token, 'utf8').digest();
  let found: string | undefined;
  for (const t of tokens) {
    if (timingSafeEqual(hash, t.sha256) && found === undefined) found = t.tenant;
  }
  return found;
}
