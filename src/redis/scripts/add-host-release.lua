-- Registers a host release in its scope's hash (field "<name>@<version>" -> its JSON) unless
-- it is there already or the scope holds as many as it may, in one step, so concurrent
-- registrations never overshoot the cap nor overwrite one another.
-- KEYS[1] the scope's hash. ARGV: field, document, limit.
-- Returns 'added', 'exists' or 'full'.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'exists' end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 'full' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 'added'
