-- Cancels every state of a build hash that has not ended (targets, "deps", "images") and
-- records canceledAt when any changed.
-- KEYS[1] the build hash. ARGV: now (ISO time), the terminal statuses (JSON array).
-- Returns the fields it canceled (empty for an unknown build or one already over).
if redis.call('HEXISTS', KEYS[1], 'record') == 0 then return {} end
local terminal = {}
for _, s in ipairs(cjson.decode(ARGV[2])) do terminal[s] = true end
local fields = redis.call('HGETALL', KEYS[1])
local changed = {}
for i = 1, #fields, 2 do
  local f = fields[i]
  if string.sub(f, 1, 2) == 't:' or f == 'deps' or f == 'images' then
    local state = cjson.decode(fields[i + 1])
    if not terminal[state.status] then
      state.status = 'canceled'
      state.finishedAt = ARGV[1]
      state.error = { code = 'canceled', message = 'The build was canceled.' }
      redis.call('HSET', KEYS[1], f, cjson.encode(state))
      table.insert(changed, f)
    end
  end
end
if #changed > 0 then redis.call('HSET', KEYS[1], 'canceledAt', ARGV[1]) end
return changed
