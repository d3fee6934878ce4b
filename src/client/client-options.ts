import { UsageError } from '../usage-error.js';
import { PlugforgeClient } from './api-client.js';
import { ClientError, EXIT } from './client-errors.js';
import { retryForMs } from './retry.js';

export const DEFAULT_SERVER = 'http://localhost:8080';

/** The options every client command takes (node:util parseArgs form). */
export const CONNECTION_OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  'retry-for': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** The client for --server / PLUGFORGE_URL and --token / PLUGFORGE_TOKEN. */
export function clientFrom(
  values: { server?: string | undefined; token?: string | undefined; 'retry-for'?: string | undefined },
  usage: string,
): PlugforgeClient {
  const server = values.server ?? process.env.PLUGFORGE_URL ?? DEFAULT_SERVER;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new UsageError(`--server ${JSON.stringify(server)} is not a URL (e.g. http://localhost:8080)`, usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`--server must be an http:// or https:// URL, not ${JSON.stringify(server)}`, usage);
  const token = values.token ?? process.env.PLUGFORGE_TOKEN;
  const retryFor = retryForMs(values['retry-for'], usage);
  const onRetry = (err: ClientError, waitMs: number) =>
    process.stderr.write(
      `plugforge: ${err.message} [${err.status ? `${err.status} ` : ''}${err.code}]; trying again in ${(waitMs / 1000).toFixed(1)} s\n`,
    );
  return new PlugforgeClient({ server, ...(token ? { token } : {}), retryForMs: retryFor, onRetry });
}

/**
 * Runs a client command and turns its failures into exit codes: a ClientError (server
 * unreachable or refusing) prints its code and message and gives 3, also as
 * `{"error": …}` on stdout with --json; a UsageError goes on to main (2); anything else
 * (a local failure, such as a file that cannot be read) prints its message and gives 1.
 */
export async function exitCodeOf(run: () => Promise<number>, json: boolean): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if (err instanceof ClientError) {
      const status = err.status ? `${err.status} ` : '';
      process.stderr.write(`plugforge: ${err.message} [${status}${err.code}]\n`);
      if (json)
        process.stdout.write(
          `${JSON.stringify({ error: { code: err.code, message: err.message, ...(err.status ? { status: err.status } : {}) } }, null, 2)}\n`,
        );
      return err.exitCode;
    }
    process.stderr.write(`plugforge: ${(err as Error)?.message ?? String(err)}\n`);
    if (json)
      process.stdout.write(
        `${JSON.stringify({ error: { code: 'client_error', message: (err as Error)?.message ?? String(err) } }, null, 2)}\n`,
      );
    return EXIT.failed;
  }
}

export function isAbort(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}

/**
 * Runs `add`, `list` (`ls`) or `rm` (`remove`) of a command with subcommands (plugforge
 * hosts, plugforge watch); no subcommand prints the usage (exit 2), `help` prints it (exit
 * 0), anything else is a usage error.
 */
export async function runSubcommand(
  command: string,
  args: string[],
  usage: string,
  run: Record<'add' | 'list' | 'rm', (args: string[]) => Promise<number>>,
): Promise<number> {
  const [sub, ...rest] = args;
  const name = sub === 'ls' ? 'list' : sub === 'remove' ? 'rm' : sub;
  if (name === 'add' || name === 'list' || name === 'rm') return run[name](rest);
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    process.stdout.write(`${usage}\n`);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  throw new UsageError(`unknown ${command} command "${sub}"`, usage);
}
