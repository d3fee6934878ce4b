/**
 * The one way the tests wait for something: `fn` is called until it returns a truthy value,
 * which is returned; first at once, then every `intervalMs`. Past `timeoutMs` it fails with
 * `message` and what the last call returned. A call that throws ends the wait with its
 * error: a condition that may fail while it is not yet true (a server not yet listening)
 * catches that itself. A test that must let time pass (an idle timeout, say) sleeps
 * instead, and says why.
 */
export interface EventuallyOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  /** Default 100 ms. */
  intervalMs?: number;
  /** What was awaited, for the error at the timeout (a function: made then, with what the caller saw last). */
  message?: string | (() => string);
}

/** What `eventually` resolves with: the truthy part of what `fn` returns. */
export type Truthy<T> = Exclude<T, undefined | null | false | 0 | ''>;

/** What `eventually` throws when the time is up (not when `fn` threw). */
export class EventuallyTimeout extends Error {}

export async function eventually<T>(fn: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<Truthy<T>> {
  const { timeoutMs = 10_000, intervalMs = 100, message = 'the awaited condition' } = options;
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value as Truthy<T>;
    const left = until - Date.now();
    if (left <= 0)
      throw new EventuallyTimeout(
        `${typeof message === 'function' ? message() : message}: not so within ${timeoutMs / 1000} s (last: ${shown(value)})`,
      );
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, left)));
  }
}

function shown(value: unknown): string {
  try {
    return (JSON.stringify(value) ?? String(value)).slice(0, 2000);
  } catch {
    return String(value);
  }
}
