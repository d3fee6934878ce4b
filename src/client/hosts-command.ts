import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { HostReleaseBody } from '../contract/api-schemas.js';
import { parseArgsOr, UsageError } from '../usage-error.js';
import { EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf, runSubcommand } from './client-options.js';
import { HOSTS_USAGE } from './client-usage.js';
import { multipartBody, type FormPart } from './multipart-body.js';
import { formatTable } from './summary-table.js';

/**
 * `plugforge hosts add|list|rm`: host releases by name (docs/hosts.md). `add` registers one
 * from its executables (--binary, one per target), the text of `go version -m`
 * (--buildinfo) or its go.mod and Go release (--gomod, --go); `list` shows the caller's and
 * the installation's; `rm NAME@VERSION` removes one of the caller's. Exit 0 when done, 2 on
 * a usage error, 3 when the server refuses or cannot be reached.
 */
export async function hostsCommand(args: string[]): Promise<number> {
  return runSubcommand('hosts', args, HOSTS_USAGE, { add: addCommand, list: listCommand, rm: removeCommand });
}

async function addCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: {
        ...CONNECTION_OPTIONS,
        name: { type: 'string' },
        version: { type: 'string' },
        binary: { type: 'string', multiple: true },
        buildinfo: { type: 'string' },
        gomod: { type: 'string' },
        go: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    },
    HOSTS_USAGE,
  );
  if (values.help) return help();
  if (positionals.length) throw new UsageError(`hosts add takes no arguments, got ${positionals.join(' ')}`, HOSTS_USAGE);
  if (!values.name || !values.version) throw new UsageError('hosts add needs --name and --version', HOSTS_USAGE);
  const binaries = values.binary ?? [];
  const given = [binaries.length > 0, values.buildinfo !== undefined, values.gomod !== undefined].filter(Boolean).length;
  if (given !== 1)
    throw new UsageError(
      'describe the release one way: --binary FILE (one per target), --buildinfo FILE (the text of go version -m), or --gomod FILE with --go',
      HOSTS_USAGE,
    );
  if ((values.gomod !== undefined) !== (values.go !== undefined))
    throw new UsageError('--go goes with --gomod, and --gomod needs --go (the Go release the host is built with)', HOSTS_USAGE);
  const files = [
    ...binaries,
    ...(values.buildinfo !== undefined ? [values.buildinfo] : []),
    ...(values.gomod !== undefined ? [values.gomod] : []),
  ];
  for (const file of files) {
    if (!(await stat(file).catch(() => undefined))?.isFile()) throw new UsageError(`${file}: no such file`, HOSTS_USAGE);
  }
  const client = clientFrom(values, HOSTS_USAGE);
  const parts: FormPart[] = [
    { name: 'name', value: values.name },
    { name: 'version', value: values.version },
  ];
  if (values.gomod !== undefined)
    parts.push({ name: 'go', value: values.go! }, { name: 'hostGoMod', value: await readFile(values.gomod, 'utf8') });
  for (const file of [...binaries, ...(values.buildinfo !== undefined ? [values.buildinfo] : [])]) {
    parts.push({
      name: 'hostBinary',
      filename: path.basename(file),
      contentType: 'application/octet-stream',
      open: () => createReadStream(file),
    });
  }
  return exitCodeOf(async () => {
    const release = await client.registerHost(multipartBody(parts));
    if (values.json) process.stdout.write(`${JSON.stringify(release, null, 2)}\n`);
    else
      process.stdout.write(
        `registered ${release.name}@${release.version} (${release.scope}): go ${release.go}, from ${release.from}${release.targets.length ? `, ${release.targets.map((t) => t.target).join(', ')}` : ''}\nbuild against it: plugforge build --hosts ${release.name}@${release.version}\n`,
      );
    return EXIT.ok;
  }, values.json);
}

async function listCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: { ...CONNECTION_OPTIONS, name: { type: 'string' }, json: { type: 'boolean', default: false } },
    },
    HOSTS_USAGE,
  );
  if (values.help) return help();
  if (positionals.length) throw new UsageError(`hosts list takes no arguments, got ${positionals.join(' ')}`, HOSTS_USAGE);
  const client = clientFrom(values, HOSTS_USAGE);
  return exitCodeOf(async () => {
    const { hosts } = await client.hosts(values.name);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(hosts, null, 2)}\n`);
      return EXIT.ok;
    }
    if (!hosts.length) {
      process.stdout.write('No host releases.\n');
      return EXIT.ok;
    }
    process.stdout.write(
      formatTable(
        ['HOST', 'SCOPE', 'GO', 'FROM', 'MODULES', 'TARGETS'],
        hosts.map((h) => [`${h.name}@${h.version}`, h.scope, h.go, h.from, String(h.modules), targetsCell(h)]),
      ),
    );
    return EXIT.ok;
  }, values.json);
}

async function removeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr({ args, allowPositionals: true, options: { ...CONNECTION_OPTIONS } }, HOSTS_USAGE);
  if (values.help) return help();
  const [ref, ...more] = positionals;
  const [name, given, ...extra] = (ref ?? '').split('@');
  // v2.4.0 and 2.4.0 are one release (the server drops the "v" too).
  const version = given?.replace(/^v(?=\d)/, '');
  if (!ref || more.length || !name || !version || extra.length)
    throw new UsageError('hosts rm takes one release, NAME@VERSION (such as gotify@2.4.0)', HOSTS_USAGE);
  const client = clientFrom(values, HOSTS_USAGE);
  return exitCodeOf(async () => {
    await client.removeHost(name, version);
    process.stdout.write(`removed ${name}@${version}\n`);
    return EXIT.ok;
  }, false);
}

/** "linux-amd64 (412 packages), …", or what described a release without executables. */
function targetsCell(h: HostReleaseBody): string {
  return h.targets.length ? h.targets.map((t) => `${t.target} (${t.packages} packages)`).join(', ') : '-';
}

function help(): number {
  process.stdout.write(`${HOSTS_USAGE}\n`);
  return EXIT.ok;
}
