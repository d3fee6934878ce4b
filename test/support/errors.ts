import { PlugforgeError } from '../../src/errors/plugforge-error.js';

/** The PlugforgeError `fn` throws; fails the test on a result or an error of another kind. */
export function errorOf(fn: () => unknown): PlugforgeError {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    if (err instanceof PlugforgeError) return err;
    throw new Error(`expected a PlugforgeError, got ${String(err)}`, { cause: err });
  }
  throw new Error(`expected a PlugforgeError, got a result: ${JSON.stringify(result).slice(0, 200)}`);
}
