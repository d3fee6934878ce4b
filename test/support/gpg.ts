import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Debian's GnuPG in a home of its own: an independent OpenPGP implementation for the tests. */
export interface Gpg {
  home: string;
  /** gpg --batch --status-fd 1 with `args`: its exit code and everything it printed. */
  run(...args: string[]): Promise<{ code: number; out: string }>;
  close(): Promise<void>;
}

export async function openGpg(): Promise<Gpg> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'plugforge-gpg-'));
  return {
    home,
    async run(...args) {
      try {
        const { stdout, stderr } = await run('gpg', ['--homedir', home, '--batch', '--status-fd', '1', ...args]);
        return { code: 0, out: stdout + stderr };
      } catch (err) {
        const e = err as { code?: number | string; stdout?: string; stderr?: string };
        if (e.code === 'ENOENT')
          throw new Error('gpg is not installed here: apt-get install -y gnupg (scripts/lib/setup.sh, setup_gpg)', { cause: err });
        return { code: Number(e.code ?? 1), out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
      }
    },
    async close() {
      await run('gpgconf', ['--homedir', home, '--kill', 'all']).catch(() => undefined);
      await rm(home, { recursive: true, force: true });
    },
  };
}
