import { parseArgsOr, UsageError } from '../usage-error.js';
import type { BuildSummaryBody as BuildSummaryView } from '../contract/api-schemas.js';
import { EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf } from './client-options.js';
import { LIST_USAGE } from './client-usage.js';
import { formatTable } from './summary-table.js';

/** The server's page size at most (GET /v1/builds): more is read page by page. */
const PAGE = 100;

/**
 * `plugforge list`: the caller's builds, newest first, filtered as GET /v1/builds filters
 * them (--status, --module, --since); up to --limit builds (default 20), read page by page.
 * A table, or (--json) a JSON array of the server's build summaries. Exit 0 once shown.
 */
export async function listCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: {
        ...CONNECTION_OPTIONS,
        status: { type: 'string' },
        module: { type: 'string' },
        since: { type: 'string' },
        limit: { type: 'string', default: '20' },
        json: { type: 'boolean', default: false },
      },
    },
    LIST_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${LIST_USAGE}\n`);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`list takes no arguments, got ${positionals.join(' ')}`, LIST_USAGE);
  const limit = Number(values.limit);
  if (!/^\d+$/.test(values.limit) || limit < 1)
    throw new UsageError(`--limit must be a positive number, not ${JSON.stringify(values.limit)}`, LIST_USAGE);
  const client = clientFrom(values, LIST_USAGE);
  return exitCodeOf(async () => {
    const builds: BuildSummaryView[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.builds({
        status: values.status,
        module: values.module,
        since: values.since,
        limit: String(Math.min(PAGE, limit - builds.length)),
        cursor,
      });
      builds.push(...page.builds);
      cursor = page.next;
    } while (cursor && builds.length < limit);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(builds, null, 2)}\n`);
      return EXIT.ok;
    }
    if (!builds.length) {
      process.stdout.write('No builds.\n');
      return EXIT.ok;
    }
    const rows = builds.map((b) => [b.id, b.status, b.go, b.name, b.createdAt.replace(/\.\d+Z$/, 'Z'), targetsCell(b)]);
    process.stdout.write(formatTable(['ID', 'STATUS', 'GO', 'NAME', 'CREATED', 'TARGETS'], rows));
    if (cursor) process.stdout.write(`\nmore builds: --limit ${limit + PAGE}\n`);
    return EXIT.ok;
  }, values.json);
}

/** "3/4 succeeded" and what the others are. */
function targetsCell(b: BuildSummaryView): string {
  const states = Object.values(b.targets).map((t) => t?.status ?? 'queued');
  const counts = new Map<string, number>();
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${n}/${states.length} ${s}`).join(', ');
}
