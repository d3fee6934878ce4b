import { describe, expect, it } from 'vitest';
import { deriveStatus } from '../src/builds/build-document.js';
import { loadConfig } from '../src/config.js';
import type { ToolchainCatalog } from '../src/images/image-catalog.js';
import { resolveOrPrepare } from '../src/images/on-demand.js';

/**
 * Which releases are made on demand, and the status of a build that waits for them: the
 * rule alone. Images made on a real engine are test/images-on-demand.test.ts.
 */
const REPO = 'plugforge/build';

describe('which releases are made on demand', () => {
  const catalog: ToolchainCatalog = { repo: REPO, images: [] };
  it('a missing release of an allowed minor is prepared; off, or a minor not allowed, is refused 422 as before', () => {
    expect(resolveOrPrepare(catalog, '1.23', ['linux-amd64'], loadConfig({}).images)).toEqual({ go: '1.23', prepare: true });
    expect(resolveOrPrepare(catalog, '1.23.5', ['linux-amd64'], loadConfig({}).images)).toEqual({ go: '1.23.5', prepare: true });
    const off = () => resolveOrPrepare(catalog, '1.23', ['linux-amd64'], loadConfig({ PLUGFORGE_IMAGES_ON_DEMAND: '0' }).images);
    expect(off).toThrow(/No builder images for Go 1.23.*plugforge images build --go 1.23/);
    const bounded = () =>
      resolveOrPrepare(catalog, '1.23', ['linux-amd64'], loadConfig({ PLUGFORGE_IMAGES_ON_DEMAND_GO: '1.25,1.26' }).images);
    expect(bounded).toThrow(/made on demand only for Go 1.25, 1.26 here \(PLUGFORGE_IMAGES_ON_DEMAND_GO\)/);
    expect(() => loadConfig({ PLUGFORGE_IMAGES_ON_DEMAND_GO: '1.19' })).toThrow(/PLUGFORGE_IMAGES_ON_DEMAND_GO/);
  });

  it('a build is preparing while its images are made, and only then queued', () => {
    const queued = [{ status: 'queued' as const, image: 'x' }];
    expect(deriveStatus(queued, false, undefined, { status: 'running', go: '1.23' })).toBe('preparing');
    expect(deriveStatus(queued, false, undefined, { status: 'succeeded', go: '1.23' })).toBe('queued');
    expect(deriveStatus(queued, true, undefined, { status: 'running', go: '1.23' })).toBe('canceled');
  });
});
