import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/**
 * plugforge's Redis scripts, one `.lua` file each beside this module (each file's header
 * states its keys, arguments and answer), read once and defined on a connection as named
 * commands: ioredis runs them by SHA and loads them again after a Redis restart. Every
 * script is one atomic step, safe for any number of processes.
 */
const SCRIPTS = {
  /** patch-state.lua: merge a JSON patch into a target's, "deps" or "images" state. */
  pfPatchState: { file: 'patch-state.lua', keys: 1 },
  /** cancel-build.lua: cancel every state of a build that has not ended. */
  pfCancelBuild: { file: 'cancel-build.lua', keys: 1 },
  /** take-place.lua: take one of a tenant's limited places, or park (or refuse) the taker. */
  pfTakePlace: { file: 'take-place.lua', keys: 2 },
  /** release-lock.lua: delete a lock only while it holds the caller's token. */
  pfReleaseLock: { file: 'release-lock.lua', keys: 1 },
  /** add-host-release.lua: register a host release unless it exists or its scope is full. */
  pfAddHostRelease: { file: 'add-host-release.lua', keys: 1 },
} as const;

export interface ScriptCommands {
  pfPatchState(buildKey: string, field: string, patch: string, force: '1' | '0'): Promise<number>;
  pfCancelBuild(buildKey: string, at: string, terminal: string): Promise<string[]>;
  /** Called through takePlace() (its number of keys varies). */
  pfTakePlace(numberOfKeys: number, ...keysAndArgs: string[]): Promise<PlaceOutcome>;
  pfReleaseLock(lockKey: string, token: string): Promise<number>;
  pfAddHostRelease(scopeKey: string, field: string, doc: string, limit: string): Promise<'added' | 'exists' | 'full'>;
}

export type ScriptedRedis = Redis & ScriptCommands;

/** `held`: it had a place; `taken`: now; `parked` (first time) / `still-parked` / `full` (no parked set): no place free. */
export type PlaceOutcome = 'held' | 'taken' | 'parked' | 'still-parked' | 'full';

/**
 * The one per-tenant limiter step: takes a place for `member` in the sorted set `places`
 * when fewer than `limit` are taken. Refused, it is parked in `parked` (if given) as
 * `parkedMember`, oldest first.
 */
export function takePlace(
  redis: Redis,
  o: { places: string; parked?: { key: string; member: string }; limit: number; member: string; now: number },
): Promise<PlaceOutcome> {
  const keys = o.parked ? [o.places, o.parked.key] : [o.places];
  return withScripts(redis).pfTakePlace(keys.length, ...keys, String(o.limit), o.member, String(o.now), o.parked?.member ?? '');
}

const sources = Object.fromEntries(
  Object.entries(SCRIPTS).map(([name, s]) => [name, readFileSync(new URL(`./scripts/${s.file}`, import.meta.url), 'utf8')]),
) as Record<keyof typeof SCRIPTS, string>;
const defined = new WeakSet<Redis>();

/** The connection with plugforge's scripts as commands (defined once per connection). */
export function withScripts(redis: Redis): ScriptedRedis {
  if (!defined.has(redis)) {
    for (const [name, s] of Object.entries(SCRIPTS)) {
      // take-place's parked set is optional: its number of keys is given per call.
      redis.defineCommand(
        name,
        name === 'pfTakePlace'
          ? { lua: sources[name as keyof typeof SCRIPTS] }
          : { numberOfKeys: s.keys, lua: sources[name as keyof typeof SCRIPTS] },
      );
    }
    defined.add(redis);
  }
  return redis as ScriptedRedis;
}
