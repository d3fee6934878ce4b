import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './env.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * The CLI tests run the compiled CLI (bin/plugforge.js → dist/), as a user would; a dist/
 * older than src/client/ would test yesterday's code, so that is refused with the fix.
 */
export function requireCompiledCli(): void {
  const dist = path.join(REPO_ROOT, 'dist', 'client');
  const src = path.join(REPO_ROOT, 'src', 'client');
  for (const file of readdirSync(src).filter((f) => f.endsWith('.ts'))) {
    const compiled = path.join(dist, file.replace(/\.ts$/, '.js'));
    let stale: boolean;
    try {
      stale = statSync(compiled).mtimeMs < statSync(path.join(src, file)).mtimeMs;
    } catch {
      stale = true;
    }
    if (stale)
      throw new Error(
        `This test runs the compiled CLI and ${path.relative(REPO_ROOT, compiled)} is missing or older than its source: run npm run build first (./scripts/test does).`,
      );
  }
}

/** Starts `node bin/plugforge.js …args` with PLUGFORGE_URL/PLUGFORGE_TOKEN from `env` only (never the caller's). */
export interface RunningCli {
  child: ChildProcess;
  result: Promise<CliResult>;
  /** stderr up to now. */
  stderr(): string;
}

export function spawnCli(args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): RunningCli {
  const started = Date.now();
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  delete env.PLUGFORGE_URL;
  delete env.PLUGFORGE_TOKEN;
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'plugforge.js'), ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
  return { child, result, stderr: () => stderr };
}

export function runCli(args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  return spawnCli(args, options).result;
}
