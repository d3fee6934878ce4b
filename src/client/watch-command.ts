import type { Watch } from './api-client.js';
import { parseArgsOr, UsageError } from '../usage-error.js';
import { EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf, runSubcommand } from './client-options.js';
import { WATCH_USAGE } from './client-usage.js';
import { formatTable } from './summary-table.js';

/**
 * `plugforge watch add|list|rm`: watches (docs/hosts.md, "Watches"). `add` names one of the
 * caller's builds and a host name, and every release of that host registered afterwards
 * rebuilds that build's source against it (its callback, if given, told of each rebuild);
 * `list` shows the caller's watches and what each last rebuilt; `rm ID` removes one. Exit 0
 * when done, 2 on a usage error, 3 when the server refuses or cannot be reached.
 */
export async function watchCommand(args: string[]): Promise<number> {
  return runSubcommand('watch', args, WATCH_USAGE, { add: addCommand, list: listCommand, rm: removeCommand });
}

async function addCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: {
        ...CONNECTION_OPTIONS,
        build: { type: 'string' },
        host: { type: 'string' },
        callback: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    },
    WATCH_USAGE,
  );
  if (values.help) return help();
  if (positionals.length) throw new UsageError(`watch add takes no arguments, got ${positionals.join(' ')}`, WATCH_USAGE);
  if (!values.build || !values.host)
    throw new UsageError('watch add needs --build (the id of a build of yours) and --host (a host name such as gotify)', WATCH_USAGE);
  const client = clientFrom(values, WATCH_USAGE);
  return exitCodeOf(async () => {
    const watch = await client.addWatch({
      build: values.build!,
      host: values.host!,
      ...(values.callback !== undefined ? { callback: values.callback } : {}),
    });
    if (values.json) process.stdout.write(`${JSON.stringify(watch, null, 2)}\n`);
    else
      process.stdout.write(
        `watch ${watch.id}: every new release of ${watch.host} rebuilds build ${watch.build}${watch.callback ? `, told to ${watch.callback}` : ''}\nremove it: plugforge watch rm ${watch.id}\n`,
      );
    return EXIT.ok;
  }, values.json);
}

async function listCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    { args, allowPositionals: true, options: { ...CONNECTION_OPTIONS, json: { type: 'boolean', default: false } } },
    WATCH_USAGE,
  );
  if (values.help) return help();
  if (positionals.length) throw new UsageError(`watch list takes no arguments, got ${positionals.join(' ')}`, WATCH_USAGE);
  const client = clientFrom(values, WATCH_USAGE);
  return exitCodeOf(async () => {
    const { watches } = await client.watches();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(watches, null, 2)}\n`);
      return EXIT.ok;
    }
    if (!watches.length) {
      process.stdout.write('No watches.\n');
      return EXIT.ok;
    }
    process.stdout.write(
      formatTable(
        ['ID', 'HOST', 'BUILD', 'CALLBACK', 'LAST'],
        watches.map((w) => [w.id, w.host, w.build, w.callback ?? '-', lastCell(w)]),
      ),
    );
    return EXIT.ok;
  }, values.json);
}

async function removeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr({ args, allowPositionals: true, options: { ...CONNECTION_OPTIONS } }, WATCH_USAGE);
  if (values.help) return help();
  const [id, ...more] = positionals;
  if (!id || more.length) throw new UsageError('watch rm takes one watch id (plugforge watch list shows them)', WATCH_USAGE);
  const client = clientFrom(values, WATCH_USAGE);
  return exitCodeOf(async () => {
    await client.removeWatch(id);
    process.stdout.write(`removed watch ${id}\n`);
    return EXIT.ok;
  }, false);
}

/** The last rebuild: "gotify@2.5.0 → <build id>", "gotify@2.5.0: <error code>", or "-" before the first. */
function lastCell(w: Watch): string {
  const last = w.builds.at(-1);
  if (!last) return '-';
  return last.build ? `${last.release} → ${last.build}` : `${last.release}: ${last.error?.code ?? 'no build'}`;
}

function help(): number {
  process.stdout.write(`${WATCH_USAGE}\n`);
  return EXIT.ok;
}
