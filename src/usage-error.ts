import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command line that cannot be run as given; the CLI prints the message and the usage and exits 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** node:util parseArgs, with its errors turned into a UsageError carrying `usage`. */
export function parseArgsOr<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ strict: true, ...config });
  } catch (err) {
    throw new UsageError((err as Error).message, usage);
  }
}
