import type { Request } from 'express';

/** The tenant a request acts for. Without configured tokens every caller is the one tenant "public". */
export function tenantOf(req: Request): string {
  return (req as Request & { tenant?: string }).tenant ?? 'public';
}
