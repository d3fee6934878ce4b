import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { PlugforgeError } from '../errors/plugforge-error.js';

/**
 * The compiled web page (`npm run build`: web/ through tsconfig.web.json, plus its html and
 * css). The same folder whether this runs from dist/api or, under vitest, from src/api.
 */
export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'web');

/**
 * The page's own resources only: no inline script or style, nothing from another origin,
 * and no framing (the page holds a token while it is open).
 */
const PAGE_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // Asset names carry no hash: the browser asks again each time, and gets 304 while unchanged.
  'Cache-Control': 'no-cache',
};

function pageMissing(dir: string): PlugforgeError {
  return new PlugforgeError(
    'web_page_missing',
    `The web page is not built (${path.join(dir, 'index.html')} is missing): run npm run build.`,
    { status: 503 },
  );
}

/**
 * `GET /` (the page) and `GET /assets/…` (its module and style sheet). Mounted before the
 * token check: the page holds no data, and asks for a token when the API answers 401.
 * Whether it is built is looked at on each request, so a build after start-up is served.
 */
export function webRoutes(dir: string = WEB_DIR): Router {
  const router = Router();
  const assets = express.static(path.join(dir, 'assets'), {
    index: false,
    redirect: false,
    fallthrough: true,
    setHeaders: (res) => res.set(PAGE_HEADERS),
  });

  router.get('/', async (_req, res) => {
    const html = await readFile(path.join(dir, 'index.html')).catch(() => undefined);
    if (!html) throw pageMissing(dir);
    res.set(PAGE_HEADERS).type('html').send(html);
  });
  router.use('/assets', (req: Request, res: Response, next: NextFunction) => {
    if (!existsSync(path.join(dir, 'index.html'))) throw pageMissing(dir);
    assets(req, res, next);
  });
  return router;
}
