import { Redis } from 'ioredis';

/**
 * ioredis connections. Workers wait for Redis and reconnect forever (BullMQ requires
 * maxRetriesPerRequest: null for them); the API fails fast instead (no offline queue), so
 * a request meets a 503 rather than hanging while Redis is down.
 */
export function connectRedis(url: string, role: 'worker' | 'api', onError?: (err: Error) => void): Redis {
  const redis = new Redis(url, {
    lazyConnect: false,
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    enableOfflineQueue: role === 'worker',
    retryStrategy: (times) => Math.min(times * 200, 2000),
    connectTimeout: 5000,
  });
  // Without a listener ioredis prints every failed reconnect; report an outage once instead.
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) onError?.(err);
    down = true;
  });
  redis.on('ready', () => {
    down = false;
  });
  return redis;
}

/** Resolves when the connection is ready, or rejects with a message saying how to start Redis. */
export async function waitForRedis(redis: Redis, url: string, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new Error(
          `Redis does not answer at ${url}. Start it (e.g. redis-server --daemonize yes --appendonly yes) or set PLUGFORGE_REDIS_URL.`,
        ),
      );
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
