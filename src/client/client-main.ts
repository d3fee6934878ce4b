import { PlugforgeError } from '../errors/plugforge-error.js';
import { PACKAGE_VERSION } from '../revision.js';
import { UsageError } from '../usage-error.js';
import { CLIENT_USAGE } from './client-usage.js';
import { clientFrom, CONNECTION_OPTIONS } from './client-options.js';
import { parseArgs } from 'node:util';

/**
 * The client's commands, each loaded when it runs. The same table serves the server's
 * executable (src/cli/main.ts) and the client package (packages/cli, docs/cli.md), which
 * ships this folder and what it imports, none of the server's processes.
 */
const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  build: async (args) => (await import('./build-command.js')).buildCommand(args),
  status: async (args) => (await import('./status-command.js')).statusCommand(args),
  list: async (args) => (await import('./list-command.js')).listCommand(args),
  logs: async (args) => (await import('./logs-command.js')).logsCommand(args),
  download: async (args) => (await import('./download-command.js')).downloadCommand(args),
  verify: async (args) => (await import('./verify-command.js')).verifyCommand(args),
  hosts: async (args) => (await import('./hosts-command.js')).hostsCommand(args),
  watch: async (args) => (await import('./watch-command.js')).watchCommand(args),
  callbacks: async (args) => (await import('./callbacks-command.js')).callbacksCommand(args),
  toolchains: async (args) => (await import('./toolchains-command.js')).toolchainsCommand(args),
};

export const CLIENT_COMMANDS: readonly string[] = Object.keys(COMMANDS);

const VERSION_USAGE = 'usage: plugforge --version [--server URL] [--token TOKEN]';

export const CLIENT_MAIN_USAGE = `plugforge — the client of a plugforge server (--server URL or PLUGFORGE_URL, default http://localhost:8080)

${CLIENT_USAGE}
${VERSION_USAGE}

The server itself (plugforge serve|api|worker|images) is not part of this package: see docs/deployment.md.`;

/** Runs a client command; undefined when `command` is none of the client's. */
export function runClientCommand(command: string, args: string[]): Promise<number> | undefined {
  if (command === '--version' || command === 'version') return versionCommand(args);
  return COMMANDS[command]?.(args);
}

/**
 * `plugforge --version`: the client's version, and the server's when one is named (by
 * --server or PLUGFORGE_URL) and answers; a server that does not answer is said, not fatal.
 */
async function versionCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: CONNECTION_OPTIONS, strict: true });
  process.stdout.write(`plugforge client ${PACKAGE_VERSION}\n`);
  if (values.server === undefined && process.env.PLUGFORGE_URL === undefined) return 0;
  const client = clientFrom(values, VERSION_USAGE);
  try {
    const health = await client.health();
    process.stdout.write(`plugforge server ${health.version ?? '(older than 0.1.0: no version)'} at ${client.server}\n`);
  } catch (err) {
    process.stdout.write(`plugforge server at ${client.server}: no answer (${(err as Error).message})\n`);
  }
  return 0;
}

/** The client package's executable (packages/cli/bin/plugforge.js): its commands, with usage errors as exit code 2. */
export async function clientMain(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    const run = command === undefined ? undefined : runClientCommand(command, args);
    if (run) return await run;
    if (command === undefined || ['help', '--help', '-h'].includes(command)) {
      process.stdout.write(`${CLIENT_MAIN_USAGE}\n`);
      return command === undefined ? 2 : 0;
    }
    const server = ['serve', 'api', 'worker', 'images'].includes(command) ? ' (the server is not part of the client package)' : '';
    throw new UsageError(`unknown command "${command}"${server}`, CLIENT_MAIN_USAGE);
  } catch (err) {
    return reportFailure(err);
  }
}

/** Prints a command's failure the way every plugforge executable does; the exit code, or the error again when it is no known kind. */
export function reportFailure(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`plugforge: ${err.message}\n${err.usage}\n`);
    return 2;
  }
  if (err instanceof PlugforgeError) {
    process.stderr.write(`plugforge: ${err.message} [${err.code}]\n`);
    // A request the command cannot take as given is a usage error, like a wrong flag.
    return err.status === 400 ? 2 : 1;
  }
  throw err;
}
