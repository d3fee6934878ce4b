/**
 * Resolves with `promise`, or with `fallback` once `ms` have passed: for teardown steps
 * that must not hang a shutdown (a close that waits on a Redis which is gone).
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
