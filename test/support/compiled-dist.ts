import { execFileSync } from 'node:child_process';
import path from 'node:path';

const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

/**
 * Vitest's global set-up: dist/ built when missing or older than src/, by the same rule as
 * scripts/test (setup_dist in scripts/lib/setup.sh), since the CLI's tests run the
 * compiled CLI. A no-op, under a second, when dist/ is current.
 */
export default function setup(): void {
  execFileSync('bash', ['-c', '. scripts/lib/setup.sh && setup_dist'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
}
