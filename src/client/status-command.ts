import { parseArgsOr, UsageError } from '../usage-error.js';
import { EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf } from './client-options.js';
import { STATUS_USAGE } from './client-usage.js';
import { failureNotes, summaryTable, timingsTable } from './summary-table.js';

/** `plugforge status ID`: the build document, as a summary or (--json) as the server sent it. Exit 0 once shown. */
export async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: { ...CONNECTION_OPTIONS, json: { type: 'boolean', default: false }, timings: { type: 'boolean', default: false } },
    },
    STATUS_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${STATUS_USAGE}\n`);
    return EXIT.ok;
  }
  const id = singleId(positionals, STATUS_USAGE);
  const client = clientFrom(values, STATUS_USAGE);
  return exitCodeOf(async () => {
    const doc = await client.build(id);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
      return EXIT.ok;
    }
    const mode = doc.mode === 'exe' ? 'executable' : 'plugin';
    process.stdout.write(
      `build ${doc.id}: ${doc.status}\n` +
        `  ${mode} ${doc.name} (module ${doc.module}), Go ${doc.go}${doc.goRequested !== doc.go ? ` (asked: ${doc.goRequested})` : ''}, host profile ${doc.host}\n` +
        `  created ${doc.createdAt}${doc.finishedAt ? `, finished ${doc.finishedAt}` : ''}${doc.canceledAt ? `, canceled ${doc.canceledAt}` : ''}\n\n` +
        summaryTable(doc) +
        (values.timings ? timingsTable(doc) : '') +
        failureNotes(doc),
    );
    return EXIT.ok;
  }, values.json);
}

/** The one build id a command takes. */
export function singleId(positionals: string[], usage: string): string {
  if (positionals.length !== 1)
    throw new UsageError(positionals.length ? `one build id expected, got ${positionals.length}` : 'a build id is needed', usage);
  return positionals[0]!;
}
