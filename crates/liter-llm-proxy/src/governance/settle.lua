-- Replaces a request's estimated tokens by the tokens it really used, in the bucket
-- that holds it in each window (KEYS: the windows' hashes), if the bucket is still in
-- the window (see admit.lua).
--
-- ARGV[1] the bucket, ARGV[2] the estimate, ARGV[3] the tokens used.

local field = ARGV[1] .. ':t'
local estimate, actual = tonumber(ARGV[2]), tonumber(ARGV[3])
local function int(x) return string.format('%d', x) end
for _, h in ipairs(KEYS) do
  local old = tonumber(redis.call('HGET', h, field))
  if old then
    local new = old - estimate
    if new < 0 then new = 0 end
    new = new + actual
    local total = (tonumber(redis.call('HGET', h, 'T')) or 0) - old
    if total < 0 then total = 0 end
    redis.call('HSET', h, field, int(new), 'T', int(total + new))
  end
end
return 0
