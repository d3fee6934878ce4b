-- Deletes a lock key only if it still holds the caller's token (a lock that expired and
-- was taken by another process is left to it).
-- KEYS[1] the lock. ARGV: token. Returns 1 when released.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
