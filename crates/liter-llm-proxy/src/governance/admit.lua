-- One admission against several sliding windows (a key's and the gateway's), admitted
-- by all of them or by none, on the Redis server's clock.
--
-- Each window is a hash KEYS[2i-1] and a sorted set KEYS[2i]. The hash holds the
-- window's totals (`R` requests, `T` tokens) and its buckets: the admissions of one
-- SLOT of the server's clock, field `<n>` (requests) and `<n>:t` (tokens). The sorted
-- set orders the buckets by their latest admission (score, in microseconds). A bucket
-- leaves the window once its latest admission is WINDOW old, so no WINDOW-long span
-- ever holds more than the limits (as the in-process windows do). Both keys expire
-- WINDOW + SLOT after the last admission, so an idle window takes no memory.
--
-- ARGV[1] tokens of this request, ARGV[2] WINDOW (us), ARGV[3] SLOT (us),
-- ARGV[4] the time (us) to use instead of the server's clock ('' in production: only
-- the tests of the edge cases set it), then per window: rpm, tpm ('' for no limit).
--
-- Admitted: {1, bucket, R1, T1, R2, T2, ...} (the totals after admission).
-- Refused:  {0, window index, 1 requests | 2 tokens, retry after (us) or -1 never, R, T}.
--
-- This file defines the functions; the admission script is this file followed by
-- `return admit(KEYS, ARGV)`, and route.lua calls them too.

-- Whole numbers as Redis reads them (tostring would write 1.7e+15).
local function int(x) return string.format('%d', x) end

-- The totals (requests, tokens) of the window (hash h, sorted set z) once the buckets
-- whose latest admission is at or before `oldest` have left.
local function expire(h, z, oldest)
  local r = tonumber(redis.call('HGET', h, 'R')) or 0
  local t = tonumber(redis.call('HGET', h, 'T')) or 0
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', oldest)
  if #gone > 0 then
    for _, b in ipairs(gone) do
      r = r - (tonumber(redis.call('HGET', h, b)) or 0)
      t = t - (tonumber(redis.call('HGET', h, b .. ':t')) or 0)
      redis.call('HDEL', h, b, b .. ':t')
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', oldest)
    if r < 0 then r = 0 end
    if t < 0 then t = 0 end
    redis.call('HSET', h, 'R', int(r), 'T', int(t))
  end
  return r, t
end

-- The time (us) `at` gives, else the Redis server's clock.
local function clock(at)
  local now = tonumber(at)
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return now
end

local function admit(KEYS, ARGV)
  local tokens = tonumber(ARGV[1])
  local window = tonumber(ARGV[2])
  local slot = tonumber(ARGV[3])
  local now = clock(ARGV[4])
  local n = #KEYS / 2
  local limits, totals = {}, {}
  local oldest = int(now - window)

  for i = 1, n do
    local h, z = KEYS[2 * i - 1], KEYS[2 * i]
    local rpm, tpm = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
    -- Buckets whose latest admission is WINDOW old leave.
    local r, t = expire(h, z, oldest)
    local function fits(requests, used)
      return (not rpm or requests < rpm) and (not tpm or used + tokens <= tpm)
    end
    if not fits(r, t) then
      if tpm and tokens > tpm then
        return {0, i, 2, -1, r, t}
      end
      local what = 2
      if rpm and r >= rpm then what = 1 end
      -- How long until enough buckets have left for the request to fit.
      local rr, tt = r, t
      local order = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
      for j = 1, #order, 2 do
        local b = order[j]
        rr = rr - (tonumber(redis.call('HGET', h, b)) or 0)
        tt = tt - (tonumber(redis.call('HGET', h, b .. ':t')) or 0)
        if fits(rr, tt) then
          local wait = tonumber(order[j + 1]) + window - now
          if wait < 1 then wait = 1 end
          return {0, i, what, wait, r, t}
        end
      end
      return {0, i, what, window, r, t}
    end
    limits[i] = tpm
    totals[i] = {r, t}
  end

  local bucket = int(math.floor(now / slot))
  local ttl = math.ceil((window + slot) / 1000)
  local out = {1, bucket}
  for i = 1, n do
    local h, z = KEYS[2 * i - 1], KEYS[2 * i]
    local r, t = totals[i][1] + 1, totals[i][2]
    redis.call('HINCRBY', h, bucket, 1)
    -- Tokens are only counted where they are limited.
    if limits[i] then
      t = t + tokens
      redis.call('HINCRBY', h, bucket .. ':t', int(tokens))
    end
    redis.call('HSET', h, 'R', int(r), 'T', int(t))
    redis.call('ZADD', z, int(now), bucket)
    redis.call('PEXPIRE', h, int(ttl))
    redis.call('PEXPIRE', z, int(ttl))
    out[#out + 1] = r
    out[#out + 1] = t
  end
  return out
end
