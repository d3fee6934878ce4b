import { pipeline } from 'node:stream/promises';
import { LOG_TRUNCATED } from '../lines.js';
import { parseArgsOr } from '../usage-error.js';
import { ClientError, EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf } from './client-options.js';
import { LOGS_USAGE } from './client-usage.js';
import { singleId } from './status-command.js';

/**
 * `plugforge logs ID [--follow] [--target T]`: the build's output on stdout, lines prefixed
 * `[target] ` unless one target is asked for. --follow streams until the build ends.
 */
export async function logsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: { ...CONNECTION_OPTIONS, follow: { type: 'boolean', short: 'f', default: false }, target: { type: 'string' } },
    },
    LOGS_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${LOGS_USAGE}\n`);
    return EXIT.ok;
  }
  const id = singleId(positionals, LOGS_USAGE);
  const client = clientFrom(values, LOGS_USAGE);
  const target = values.target;
  return exitCodeOf(async () => {
    if (!values.follow) {
      await pipeline(await client.logs(id, target), process.stdout, { end: false });
      return EXIT.ok;
    }
    if (target !== undefined) {
      const doc = await client.build(id);
      if (!(target in doc.targets))
        throw new ClientError(
          'unknown_target',
          `Build ${id} has no target "${target}"; its targets: ${Object.keys(doc.targets).join(', ')}.`,
        );
    }
    // All targets are followed, as whole lines with their prefix, and one target's lines
    // picked out here: the server's single-target stream is not cut at line ends.
    const prefix = target === undefined ? undefined : `[${target}] `;
    const result = await client.followLogs(id, {}, (line) => {
      if (prefix === undefined) process.stdout.write(`${line}\n`);
      else if (line.startsWith(prefix)) process.stdout.write(`${line.slice(prefix.length)}\n`);
      // Lines were dropped (the log's cap): of which target is not known, so every target's reader is told.
      else if (line.startsWith(LOG_TRUNCATED)) process.stdout.write(`${line}\n`);
    });
    if (!result.ended) throw new ClientError('log_stream_broken', `The log stream broke off before the build ended (${result.reason}).`);
    return EXIT.ok;
  }, false);
}
