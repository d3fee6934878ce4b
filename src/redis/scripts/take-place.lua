-- Takes one of a tenant's places (a sorted set: member -> since) if the limit allows, in
-- one step, so concurrent takers never overshoot it. With KEYS[2] (a parked set), a taker
-- refused is parked there, keeping its first score so the oldest is woken first.
-- KEYS[1] places, KEYS[2] parked (optional). ARGV: limit, member, now (ms), parked member.
-- Returns 'held' (it had a place), 'taken', 'parked' (first refusal), 'still-parked' or
-- 'full' (refused, no parked set).
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[4]) end
  return 'held'
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[4]) end
  return 'taken'
end
if not KEYS[2] then return 'full' end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[4]) == 1 then return 'parked' end
return 'still-parked'
