import { parseArgsOr, UsageError } from '../usage-error.js';
import { TARGET_IDS } from '../contract/targets.js';
import { EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf } from './client-options.js';
import { TOOLCHAINS_USAGE } from './client-usage.js';
import { formatTable } from './summary-table.js';

/** `plugforge toolchains`: the Go versions × targets the server's workers have images for. */
export async function toolchainsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    { args, allowPositionals: true, options: { ...CONNECTION_OPTIONS, json: { type: 'boolean', default: false } } },
    TOOLCHAINS_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${TOOLCHAINS_USAGE}\n`);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`toolchains takes no arguments, got ${positionals.join(' ')}`, TOOLCHAINS_USAGE);
  const client = clientFrom(values, TOOLCHAINS_USAGE);
  return exitCodeOf(async () => {
    const list = await client.toolchains();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      return EXIT.ok;
    }
    if (!list.toolchains.length) {
      process.stdout.write(
        `No toolchains: no worker reports ${list.repo} images. Build some on a worker with: plugforge images build --go ${list.defaultGo}\n`,
      );
      return EXIT.ok;
    }
    const rows = list.toolchains.map((tc) => [tc.go, ...TARGET_IDS.map((t) => (tc.targets.includes(t) ? 'yes' : '-'))]);
    process.stdout.write(formatTable(['GO', ...TARGET_IDS], rows));
    process.stdout.write(`\nimages: ${list.repo}; default Go: ${list.defaultGo} (a minor version means its newest patch above)\n`);
    return EXIT.ok;
  }, values.json);
}
