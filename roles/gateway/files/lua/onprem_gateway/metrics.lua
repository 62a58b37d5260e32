-- Prometheus metrics: counters in the shared dict gw_metrics, added to in the log phase (a few
-- incr calls, no I/O) and written out by the metrics server's /metrics (text format 0.0.4).
--
-- Every label value comes from a bounded set, so no caller can add series by what it sends:
--   route            a key of route.ROUTES, or "other" (404, 400, requests nginx refused itself)
--   model            a model of the compiled policy, "none" (the request named none) or "other"
--   status           the HTTP status nginx answered
--   principal_class  the principal's first role in the policy, "none" (a principal without roles),
--                    "revoked" (a revoked key id or client certificate serial) or "anonymous" (no
--                    key or certificate, or none that checked out)
--   limit            requests_per_second, tokens_per_minute or concurrency
--   upstream         a gateway_upstreams name
--   kind             prompt or completion
-- So the series are at most routes x models x statuses x classes; 10m holds tens of thousands.
-- The dict outlives reloads (same name and size) and starts at zero when nginx restarts, which
-- Prometheus reads as a counter reset.
local policy = require "onprem_gateway.policy"
local route = require "onprem_gateway.route"
local concat, sort = table.concat, table.sort
local format, gsub, gmatch, match, find, sub = string.format, string.gsub, string.gmatch, string.match,
  string.find, string.sub
local floor = math.floor

local M = {}

local SEP = "\31"
M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 }
local LE = {}
for i, bound in ipairs(M.BUCKETS) do LE[i] = format("%g", bound) end
LE[#M.BUCKETS + 1] = "+Inf"
local FAILED = { ["502"] = true, ["503"] = true, ["504"] = true }

local function dict() return ngx.shared.gw_metrics end

local function add(d, key, value)
  local ok, err = d:incr(key, value, 0)
  if not ok then ngx.log(ngx.WARN, "gateway metrics: ", err) end
end

local function bucket_of(seconds)
  for i, bound in ipairs(M.BUCKETS) do
    if seconds <= bound then return i end
  end
  return #M.BUCKETS + 1
end

-- Log phase: one request's counts.
function M.record(ctx)
  local d = dict()
  if not d then return end
  local var, p = ngx.var, policy.get()
  local name = var.gw_route
  if not name or not route.ROUTES[name] then name = "other" end
  local model = var.gw_model
  if not model or model == "" then
    model = "none"
  elseif not (p and p.models[model]) then
    model = "other"
  end
  local class = ctx.gw_class
  if not class then
    local who = var.gw_principal
    local entry = who and who ~= "" and p and p.principals[who]
    class = entry and entry.class or "anonymous"
  end
  add(d, concat({ "q", name, model, var.status or "000", class }, SEP), 1)
  -- Both clocks tick in milliseconds.
  local seconds = floor((ngx.now() - ngx.req.start_time()) * 1000 + 0.5) / 1000
  if seconds < 0 then seconds = 0 end
  local series = name .. SEP .. model
  add(d, "h" .. SEP .. series .. SEP .. bucket_of(seconds), 1)
  add(d, "s" .. SEP .. series, seconds)
  if ctx.gw_limit then add(d, concat({ "l", ctx.gw_limit, class }, SEP), 1) end
  local tried = var.upstream_status
  -- Every counted status holds "50": without it there is nothing to count (no pattern search).
  if tried and find(tried, "50", 1, true) then
    local pool = match(var.gw_upstream or "", "^gw_up_(.+)$") or "other"
    -- One number per attempt (", " between servers, " : " across internal redirects).
    for code in gmatch(tried, "%d+") do
      if FAILED[code] then add(d, "u" .. SEP .. pool, 1) end
    end
  end
  if ctx.gw_principal and ctx.gw_tokens then
    if ctx.gw_prompt > 0 then add(d, concat({ "t", model, "prompt" }, SEP), ctx.gw_prompt) end
    if ctx.gw_completion > 0 then add(d, concat({ "t", model, "completion" }, SEP), ctx.gw_completion) end
  end
end

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }

local function labels(names, values)
  local out = {}
  for i, label in ipairs(names) do
    out[i] = label .. '="' .. gsub(values[i], '[\\"\n]', ESCAPES) .. '"'
  end
  return "{" .. concat(out, ",") .. "}"
end

local function number(v)
  if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
  return format("%.15g", v)
end

local function split(key)
  local fields, start = {}, 1
  while true do
    local at = find(key, SEP, start, true)
    fields[#fields + 1] = sub(key, start, at and at - 1 or -1)
    if not at then return fields end
    start = at + 1
  end
end

local FAMILIES = {
  { kind = "q", name = "onprem_gateway_requests_total", type = "counter",
    labels = { "route", "model", "status", "principal_class" },
    help = "Requests answered, by route, model, status and principal class." },
  { kind = "h", name = "onprem_gateway_request_duration_seconds", type = "histogram",
    labels = { "route", "model" },
    help = "Time from the first byte of the request to the last byte of the answer." },
  { kind = "l", name = "onprem_gateway_limit_rejections_total", type = "counter",
    labels = { "limit", "principal_class" }, help = "Requests answered 429, by the limit they exceeded." },
  { kind = "u", name = "onprem_gateway_upstream_failures_total", type = "counter",
    labels = { "upstream" }, help = "Engine attempts that ended in 502, 503 or 504 (connection failures included)." },
  { kind = "t", name = "onprem_gateway_tokens_total", type = "counter",
    labels = { "model", "kind" }, help = "Tokens the engines reported, by model and kind." },
}

-- content_by_lua of the metrics server. get_keys locks the dict while it copies the key list;
-- the label bounds above keep that list short.
function M.expose()
  local d = dict()
  local keys = d:get_keys(0)
  sort(keys)
  local samples, histograms = {}, {}
  for _, family in ipairs(FAMILIES) do samples[family.kind] = {} end
  for _, key in ipairs(keys) do
    local fields = split(key)
    local kind, value = fields[1], d:get(key) or 0
    if (kind == "h" and #fields == 4) or (kind == "s" and #fields == 3) then
      local series = fields[2] .. SEP .. fields[3]
      local h = histograms[series]
      if not h then
        h = { fields[2], fields[3], counts = {}, sum = 0 }
        histograms[series] = h
        samples.h[#samples.h + 1] = h
      end
      local i = tonumber(fields[4])
      if kind == "s" then
        h.sum = value
      elseif i then
        h.counts[i] = value
      end
    elseif samples[kind] and kind ~= "h" then
      samples[kind][#samples[kind] + 1] = { fields, value }
    end
  end
  local out = {}
  for _, family in ipairs(FAMILIES) do
    out[#out + 1] = "# HELP " .. family.name .. " " .. family.help
    out[#out + 1] = "# TYPE " .. family.name .. " " .. family.type
    local names = family.labels
    if family.kind == "h" then
      local with_le = { names[1], names[2], "le" }
      for _, h in ipairs(samples.h) do
        -- The count is the +Inf bucket, so the two always agree.
        local total = 0
        for i = 1, #LE do
          total = total + (h.counts[i] or 0)
          out[#out + 1] = family.name .. "_bucket" .. labels(with_le, { h[1], h[2], LE[i] }) .. " " .. number(total)
        end
        local set = labels(names, h)
        out[#out + 1] = family.name .. "_sum" .. set .. " " .. number(h.sum)
        out[#out + 1] = family.name .. "_count" .. set .. " " .. number(total)
      end
    else
      for _, sample in ipairs(samples[family.kind]) do
        local fields, values = sample[1], {}
        if #fields == #names + 1 then
          for i = 1, #names do values[i] = fields[i + 1] end
          out[#out + 1] = family.name .. labels(names, values) .. " " .. number(sample[2])
        end
      end
    end
  end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
  ngx.print(concat(out, "\n"), "\n")
end

return M
