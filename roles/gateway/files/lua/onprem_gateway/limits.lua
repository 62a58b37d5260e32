-- Per-principal limits kept in the shared dict gw_limits: requests per second (fixed
-- one-second windows), tokens per minute (fixed minute windows, charged with the engine's
-- reported usage once a response ends) and concurrent requests (taken in the access phase,
-- given back in the log phase, which runs for aborted requests too). Tokens are charged after
-- the answer, so a principal under its limit may overshoot it by the answers in flight; a
-- worker that crashes mid-request leaves its concurrency slots taken until nginx restarts.
--
-- The counters live in this host's shared memory. With several gateway hosts behind a
-- balancer every limit applies per gateway host: a principal spread over N hosts can reach
-- N times each limit in total. Size the limits for one host accordingly.
local floor = math.floor

local M = {}

local function dict() return ngx.shared.gw_limits end

-- true, or false, the Retry-After seconds and the name of the limit.
function M.enter(ctx, principal, limits)
  local d, now = dict(), ngx.now()
  local second = floor(now)
  local count = d:incr("r:" .. principal .. ":" .. second, 1, 0, 2)
  if not count or count > limits.requests_per_second then return false, 1, "requests_per_second" end
  local used = d:get("t:" .. principal .. ":" .. floor(now / 60)) or 0
  if used >= limits.tokens_per_minute then return false, 60 - second % 60, "tokens_per_minute" end
  local busy = d:incr("c:" .. principal, 1, 0)
  if not busy then return false, 1, "concurrency" end
  if busy > limits.concurrency then
    d:incr("c:" .. principal, -1, 0)
    return false, 1, "concurrency"
  end
  ctx.gw_busy = principal
  return true
end

function M.leave(ctx)
  if ctx.gw_busy then
    dict():incr("c:" .. ctx.gw_busy, -1, 0)
    ctx.gw_busy = nil
  end
end

function M.charge(principal, tokens)
  if tokens > 0 then
    dict():incr("t:" .. principal .. ":" .. floor(ngx.now() / 60), tokens, 0, 120)
  end
end

return M
