import { ConfigError } from '../config-error.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { CLIENT_USAGE } from '../client/client-usage.js';
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

Configuration comes from PLUGFORGE_* environment variables (see docs/configuration.md).`;

/** Runs a command line; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'images':
        return await (await import('./images-command.js')).imagesCommand(args, await config());
      case 'serve':
      case 'api':
      case 'worker': {
        const { serveCommand } = await import('./serve-command.js');
        return await serveCommand(command, args, await config());
      }
      case 'build':
        return await (await import('../client/build-command.js')).buildCommand(args);
      case 'status':
        return await (await import('../client/status-command.js')).statusCommand(args);
      case 'list':
        return await (await import('../client/list-command.js')).listCommand(args);
      case 'logs':
        return await (await import('../client/logs-command.js')).logsCommand(args);
      case 'download':
        return await (await import('../client/download-command.js')).downloadCommand(args);
      case 'verify':
        return await (await import('../client/verify-command.js')).verifyCommand(args);
      case 'hosts':
        return await (await import('../client/hosts-command.js')).hostsCommand(args);
      case 'toolchains':
        return await (await import('../client/toolchains-command.js')).toolchainsCommand(args);
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
    if (err instanceof UsageError) {
      process.stderr.write(`plugforge: ${err.message}\n${err.usage}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`plugforge: ${err.message}\n`);
      return 2;
    }
    if (err instanceof PlugforgeError) {
      process.stderr.write(`plugforge: ${err.message} [${err.code}]\n`);
      // A request the command cannot take as given is a usage error, like a wrong flag.
      return err.status === 400 ? 2 : 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'ECONNREFUSED' || e?.code === 'ENOENT') {
      process.stderr.write(`plugforge: cannot reach the Docker engine (${e.message}). Start dockerd, or set PLUGFORGE_DOCKER_HOST.\n`);
      return 1;
    }
    throw err;
  }
}
