import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { REPO_ROOT } from './env.js';

/**
 * A real Chromium for the web page's tests: Debian's `chromium` package, driven by
 * puppeteer-core (which downloads no browser of its own). PLUGFORGE_CHROMIUM points
 * elsewhere.
 */
export const CHROMIUM = process.env.PLUGFORGE_CHROMIUM ?? '/usr/bin/chromium';

export function requireChromium(): string {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `This test drives a real Chromium and there is none at ${CHROMIUM}. Install Debian's: apt-get install chromium ` +
        `(./scripts/test does it), or point PLUGFORGE_CHROMIUM at a Chromium or Chrome binary.`,
    );
  }
  return CHROMIUM;
}

/**
 * The page is served from dist/web (src/api/web-routes.ts); one older than web/ would test
 * yesterday's page, so that is refused with the fix, as test/support/cli.ts does for the CLI.
 */
export function requireCompiledWeb(): void {
  const web = path.join(REPO_ROOT, 'web');
  const out = path.join(REPO_ROOT, 'dist', 'web');
  const pairs: [string, string][] = readdirSync(web)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => [path.join(web, f), path.join(out, 'assets', 'web', f.replace(/\.ts$/, '.js'))]);
  pairs.push(
    [path.join(web, 'index.html'), path.join(out, 'index.html')],
    [path.join(web, 'app.css'), path.join(out, 'assets', 'app.css')],
  );
  for (const [source, built] of pairs) {
    const stale = !existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs;
    if (stale)
      throw new Error(
        `This test serves the built web page and ${path.relative(REPO_ROOT, built)} is missing or older than its source: run npm run build first (./scripts/test does).`,
      );
  }
}

/** Headless, with downloads saved into `downloads`. */
export async function launchChromium(downloads: string): Promise<Browser> {
  return puppeteer.launch({
    executablePath: requireChromium(),
    headless: true,
    // Chromium's sandbox will not start as root (it needs an unprivileged user for its
    // namespaces), and the tests run as root here and in CI; the pages it opens are our own.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-gpu'],
    downloadBehavior: { policy: 'allow', downloadPath: downloads },
  });
}

/**
 * What went wrong inside a page: uncaught errors, console errors (a Content-Security-Policy
 * violation is one) and requests that left the service's origin. Tests expect none.
 */
export function watchPage(page: Page, origin: string): string[] {
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${(err as Error).message}`));
  page.on('console', (m) => {
    // A 401/403/404 answer the page shows is logged by Chromium as a failed resource; the page handles those.
    if (m.type() === 'error' && !/status of (401|403|404|409)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(origin) && !url.startsWith('data:') && !url.startsWith('blob:'))
      problems.push(`request outside the service: ${url}`);
  });
  return problems;
}
