import { parseArgsOr, UsageError } from '../usage-error.js';
import { EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf } from './client-options.js';
import { CALLBACKS_USAGE } from './client-usage.js';

/**
 * `plugforge callbacks secret`: the secret the caller's callbacks are signed with (docs/hosts.md,
 * "Callbacks"), for the receiver to check their signature header. Exit 0 when printed, 2 on a
 * usage error, 3 when the server refuses or cannot be reached.
 */
export async function callbacksCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || ['help', '--help', '-h'].includes(sub)) {
    process.stdout.write(`${CALLBACKS_USAGE}\n`);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub !== 'secret') throw new UsageError(`unknown callbacks command "${sub}"`, CALLBACKS_USAGE);
  const { values, positionals } = parseArgsOr(
    { args: rest, allowPositionals: true, options: { ...CONNECTION_OPTIONS, json: { type: 'boolean', default: false } } },
    CALLBACKS_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${CALLBACKS_USAGE}\n`);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`callbacks secret takes no arguments, got ${positionals.join(' ')}`, CALLBACKS_USAGE);
  const client = clientFrom(values, CALLBACKS_USAGE);
  return exitCodeOf(async () => {
    const secret = await client.callbackSecret();
    // The secret alone on stdout, so that a script can take it as it is; how to use it on stderr.
    if (values.json) process.stdout.write(`${JSON.stringify(secret, null, 2)}\n`);
    else {
      process.stdout.write(`${secret.secret}\n`);
      process.stderr.write(`callbacks carry ${secret.header}: sha256=<${secret.algorithm} of the body under this secret>\n`);
    }
    return EXIT.ok;
  }, values.json);
}
