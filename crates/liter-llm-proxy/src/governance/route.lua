-- Routing with Redis: chooses one of a pool's candidate deployments and admits it
-- against its own rpm/tpm window (admit.lua's `admit`, which this file follows), in
-- one atomic round trip on the Redis server's clock.
--
-- Per candidate i: KEYS[3i-2], KEYS[3i-1] its window (admit.lua) and KEYS[3i] its
-- in-flight set (members: request ids; score: when the entry lapses, in us, so a
-- gateway that died mid-request stops counting once its entries lapse).
--
-- ARGV[1] tokens, ARGV[2] WINDOW (us), ARGV[3] SLOT (us), ARGV[4] the time (us) instead
-- of the server's clock ('' in production), ARGV[5] the ranking, ARGV[6] this request's
-- id, ARGV[7] which candidate (0-based) goes first among equals, then per candidate:
-- rpm, tpm ('' for no limit) and its in-flight entry's lifetime (us).
--
-- Rankings: 'first' tries the candidates in the order given; 'busy' (least-busy)
-- fewest in flight first, and counts the request in flight on the one admitted;
-- 'usage' (usage-based) the most headroom left under rpm/tpm first.
--
-- Admitted: {1, candidate (1-based), bucket or '' when no window was checked}.
-- Refused (no candidate fits): {0, then per candidate its retry after (us) or -1
-- never}.

local tokens = ARGV[1]
local window = tonumber(ARGV[2])
local ranking = ARGV[5]
local id = ARGV[6]
local first = tonumber(ARGV[7])
local now = clock(ARGV[4])
local n = #KEYS / 3
local oldest = int(now - window)

local score, rank = {}, {}
for i = 1, n do
  local h, z, busy = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local rpm, tpm = tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  local s = 0
  if ranking == 'busy' then
    redis.call('ZREMRANGEBYSCORE', busy, '-inf', int(now))
    s = redis.call('ZCARD', busy)
  elseif ranking == 'usage' and (rpm or tpm) then
    local r, t = expire(h, z, oldest)
    if rpm then s = math.max(s, r / rpm) end
    if tpm then s = math.max(s, t / tpm) end
  end
  score[i] = s
  -- Equals in a rotated order, so they share the load.
  rank[#rank + 1] = {s, (i - 1 - first) % n, i}
end
if ranking ~= 'first' then
  table.sort(rank, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
end

local waits = {0}
for _, c in ipairs(rank) do
  local i = c[3]
  local rpm, tpm = ARGV[5 + 3 * i], ARGV[6 + 3 * i]
  local out = {1}
  if rpm ~= '' or tpm ~= '' then
    out = admit({KEYS[3 * i - 2], KEYS[3 * i - 1]},
      {tokens, ARGV[2], ARGV[3], int(now), rpm, tpm})
  end
  if out[1] == 1 then
    if ranking == 'busy' then
      local busy, life = KEYS[3 * i], tonumber(ARGV[7 + 3 * i])
      redis.call('ZADD', busy, int(now + life), id)
      -- The set outlives its longest entry.
      local ms = math.ceil(life / 1000)
      if redis.call('PTTL', busy) < ms then
        redis.call('PEXPIRE', busy, int(ms))
      end
    end
    return {1, i, out[2] or ''}
  end
  waits[i + 1] = out[4]
end
return waits
