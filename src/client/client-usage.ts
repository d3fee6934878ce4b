/** The usage lines of the client commands (kept apart so main.ts can show them without loading the commands). */
export const BUILD_USAGE = `usage: plugforge build [DIR] [--go VERSION] [--targets t1,t2] [--name NAME] [--mode plugin|exe]
                       [--host gotify|flow|generic] [--host-go-mod FILE] [--host-binary FILE] [--hosts NAME@VERSION[,NAME@VERSION...]]
                       [--package ./dir] [--cgo] [--trimpath] [--strip] [--tags t1,t2] [--verify strict|warn|loaded] [--callback URL]
                       [--out DIR] [--bundle] [--json] [--quiet] [--timings] [--server URL] [--token TOKEN] [--retry-for SECONDS]
                       [--junit FILE] [--summary FILE] [--annotations github] [--document FILE]`;
export const STATUS_USAGE = 'usage: plugforge status ID [--json] [--timings] [--server URL] [--token TOKEN]';
export const LOGS_USAGE = 'usage: plugforge logs ID [--follow] [--target TARGET] [--server URL] [--token TOKEN]';
export const DOWNLOAD_USAGE = 'usage: plugforge download ID [--out DIR] [--bundle] [--json] [--server URL] [--token TOKEN]';
export const LIST_USAGE =
  'usage: plugforge list [--status STATUS] [--module PATH] [--since TIME] [--limit N] [--json] [--server URL] [--token TOKEN]';
export const VERIFY_USAGE = 'usage: plugforge verify DIR|FILE [--key FILE] [--json] [--server URL] [--token TOKEN]';
export const TOOLCHAINS_USAGE = 'usage: plugforge toolchains [--json] [--server URL] [--token TOKEN]';

export const HOSTS_USAGE = `usage: plugforge hosts add --name NAME --version VERSION (--binary FILE... | --buildinfo FILE | --gomod FILE --go VERSION) [--json] [--server URL] [--token TOKEN]
       plugforge hosts list [--name NAME] [--json] [--server URL] [--token TOKEN]
       plugforge hosts rm NAME@VERSION [--server URL] [--token TOKEN]`;

export const WATCH_USAGE = `usage: plugforge watch add --build ID --host NAME [--callback URL] [--json] [--server URL] [--token TOKEN]
       plugforge watch list [--json] [--server URL] [--token TOKEN]
       plugforge watch rm ID [--server URL] [--token TOKEN]`;
export const CALLBACKS_USAGE = 'usage: plugforge callbacks secret [--json] [--server URL] [--token TOKEN]';

export const CLIENT_USAGE = [
  BUILD_USAGE,
  STATUS_USAGE,
  LIST_USAGE,
  LOGS_USAGE,
  DOWNLOAD_USAGE,
  VERIFY_USAGE,
  TOOLCHAINS_USAGE,
  HOSTS_USAGE,
  WATCH_USAGE,
  CALLBACKS_USAGE,
].join('\n');
