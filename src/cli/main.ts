import { ConfigError } from '../config-error.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { CLIENT_USAGE } from '../client/client-usage.js';
import { reportFailure, runClientCommand } from '../client/client-main.js';
import { IMAGES_USAGE } from './images-usage.js';
import { UsageError } from '../usage-error.js';

// Every command is loaded when it runs: a client command starts without the server's modules.
const config = async () => (await import('../config.js')).loadConfig();

export const USAGE = `plugforge — builds Go plugins for linux amd64, arm-7, arm64 and 386

usage: plugforge serve            API and a worker in one process (one machine)
       plugforge api              the REST API only
       plugforge worker           a build worker only (needs a Docker engine)
${IMAGES_USAGE.replace(/^usage: /, '       ')}

Client of a plugforge server (--server URL or PLUGFORGE_URL, default http://localhost:8080):
${CLIENT_USAGE.replace(/^usage: /gm, '       ')}
       plugforge --version [--server URL]   this executable's version, and the server's

Configuration comes from PLUGFORGE_* environment variables (see docs/configuration.md).`;

/** Runs a command line; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    const client = command === undefined ? undefined : runClientCommand(command, args);
    if (client) return await client;
    switch (command) {
      case 'images':
        return await (await import('./images-command.js')).imagesCommand(args, await config());
      case 'serve':
      case 'api':
      case 'worker': {
        const { serveCommand } = await import('./serve-command.js');
        return await serveCommand(command, args, await config());
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`, USAGE);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`plugforge: ${err.message}\n`);
      return 2;
    }
    if (err instanceof UsageError || err instanceof PlugforgeError) return reportFailure(err);
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'ECONNREFUSED' || e?.code === 'ENOENT') {
      process.stderr.write(`plugforge: cannot reach the Docker engine (${e.message}). Start dockerd, or set PLUGFORGE_DOCKER_HOST.\n`);
      return 1;
    }
    throw err;
  }
}
