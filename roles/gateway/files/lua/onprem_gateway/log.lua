-- Response side: usage from the engine's answers (tokens per minute and the audit log),
-- /v1/models narrowed to the caller's models, and the concurrency slot given back.
local cjson = require "cjson.safe"
local json = require "onprem_gateway.json"
local limits = require "onprem_gateway.limits"
local metrics = require "onprem_gateway.metrics"
local find, sub, gmatch, concat = string.find, string.sub, string.gmatch, table.concat

local M = {}
-- The most of a /v1/models answer kept to narrow it; a longer one lists no model.
local KEEP_MAX = 4 * 1024 * 1024
-- Usage comes last in an answer: only this much of its end is kept, and of an SSE line.
local TAIL = 64 * 1024
local LINE_MAX = 1024 * 1024

local function record_usage(ctx, usage)
  if type(usage) ~= "table" then return end
  local prompt, completion = tonumber(usage.prompt_tokens) or 0, tonumber(usage.completion_tokens) or 0
  ctx.gw_tokens, ctx.gw_prompt, ctx.gw_completion = prompt + completion, prompt, completion
  ngx.var.gw_prompt_tokens, ngx.var.gw_completion_tokens = tostring(prompt), tostring(completion)
end

function M.header_filter()
  local ctx = ngx.ctx
  if ctx.gw_visible and ngx.status == 200 then
    ctx.gw_filter, ctx.gw_kept, ctx.gw_size = true, {}, 0
    ngx.header.content_length = nil
  end
end

-- The upstream list narrowed to the visible models; each entry is copied byte for byte.
local function narrow(text, visible)
  local doc = json.decode(text)
  local data = doc and doc.t == "object" and doc.v.data
  local out = {}
  if data and data.t == "array" then
    for _, item in ipairs(data.v) do
      local id = item.t == "object" and item.v.id
      if id and id.t == "string" and visible[id.v] then out[#out + 1] = sub(text, item.s, item.e) end
    end
  end
  return '{"object":"list","data":[' .. concat(out, ",") .. "]}"
end

-- SSE lines are read as they pass; only the last complete usage object counts.
local function scan_events(ctx, chunk)
  local text = (ctx.gw_partial or "") .. chunk
  local start = 1
  while true do
    local nl = find(text, "\n", start, true)
    if not nl then break end
    local line = sub(text, start, nl - 1)
    if find(line, '"usage"', 1, true) and sub(line, 1, 5) == "data:" then
      local event = cjson.decode(sub(line, 6))
      if type(event) == "table" then record_usage(ctx, event.usage) end
    end
    start = nl + 1
  end
  ctx.gw_partial = #text - start < LINE_MAX and sub(text, start) or nil
end

-- The last "usage" member of a JSON answer. An escaped quote inside a string cannot match, so
-- text the model wrote cannot stand in for the engine's count.
local function tail_usage(ctx, tail)
  if not find(tail, '"usage"', 1, true) then return end
  local last
  for object in gmatch(tail, '"usage"%s*:%s*(%b{})') do last = object end
  if last then record_usage(ctx, cjson.decode(last)) end
end

-- The engine's answer as it arrived (SSE text for a stream), cut at gateway_audit_payload_max bytes.
local function keep_payload(ctx, chunk, eof)
  if not ctx.gw_payload then
    ctx.gw_payload_left = tonumber(ngx.var.gw_payload_max) or 0
    if ctx.gw_payload_left <= 0 then ctx.gw_payload = false return end
    ctx.gw_payload = {}
  end
  if ctx.gw_payload_left > 0 and chunk ~= "" then
    local part = sub(chunk, 1, ctx.gw_payload_left)
    ctx.gw_payload[#ctx.gw_payload + 1] = part
    ctx.gw_payload_left = ctx.gw_payload_left - #part
    if #part < #chunk then ngx.var.gw_payload_truncated = "true" end
  elseif chunk ~= "" then
    ngx.var.gw_payload_truncated = "true"
  end
  if eof then ngx.var.gw_response_body = concat(ctx.gw_payload) end
end

function M.body_filter()
  local ctx = ngx.ctx
  if not ctx.gw_principal then return end
  local chunk, eof = ngx.arg[1], ngx.arg[2]
  if ctx.gw_payload ~= false then keep_payload(ctx, chunk, eof) end
  if ctx.gw_stream then
    if chunk ~= "" then scan_events(ctx, chunk) end
  elseif ctx.gw_filter then
    if ctx.gw_size <= KEEP_MAX then
      ctx.gw_kept[#ctx.gw_kept + 1] = chunk
      ctx.gw_size = ctx.gw_size + #chunk
    end
    ngx.arg[1] = nil
    -- Fails closed: an answer that cannot be read lists no model.
    if eof then ngx.arg[1] = narrow(ctx.gw_size <= KEEP_MAX and concat(ctx.gw_kept) or "", ctx.gw_visible) end
  else
    if chunk ~= "" then
      local tail = ctx.gw_tail
      tail = tail and tail .. chunk or chunk
      ctx.gw_tail = #tail > TAIL and sub(tail, -TAIL) or tail
    end
    if eof then tail_usage(ctx, ctx.gw_tail or "") end
  end
end

function M.log()
  local ctx = ngx.ctx
  limits.leave(ctx)
  if ctx.gw_principal and ctx.gw_tokens then limits.charge(ctx.gw_principal, ctx.gw_tokens) end
  metrics.record(ctx)
end

return M
