-- Merges a JSON patch into one state field of a build hash (a target's "t:<target>",
-- "deps" or "images"); a null in the patch removes that key. A canceled state is left
-- alone unless forced.
-- KEYS[1] the build hash. ARGV: field, patch (JSON), force ("1" or "0").
-- Returns 1 when applied, 0 when the field is missing or canceled.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local state = cjson.decode(raw)
if ARGV[3] ~= '1' and state.status == 'canceled' then return 0 end
local patch = cjson.decode(ARGV[2])
for k, v in pairs(patch) do
  if v == cjson.null then state[k] = nil else state[k] = v end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(state))
return 1
