-- The rewrite and access phases: route, key or client certificate, body, grant, limits and A/B
-- variant, in the order of _gateway_policy.decide. Nothing here does I/O except reading the
-- request body.
local cjson = require "cjson.safe"
local json = require "onprem_gateway.json"
local route = require "onprem_gateway.route"
local policy = require "onprem_gateway.policy"
local auth = require "onprem_gateway.auth"
local limits = require "onprem_gateway.limits"
local byte, sub, gsub = string.byte, string.sub, string.gsub

local M = {}

local REASONS = { [400] = "bad request", [401] = "missing or invalid API key or client certificate",
                  [403] = "forbidden", [404] = "not found", [405] = "method not allowed",
                  [413] = "request body too large", [429] = "rate limit exceeded" }

local function deny(status, retry_after)
  if retry_after then ngx.header["Retry-After"] = tostring(retry_after) end
  if status == 401 then ngx.header["WWW-Authenticate"] = 'Bearer realm="gateway"' end
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode({ error = { message = REASONS[status], code = status } }))
  return ngx.exit(status)
end

-- Rewrite phase. Each proxied location sets $gw_route to its own path; a request whose raw
-- path normalises to another route is sent there, so nginx's and Python's path rules never
-- have to agree.
function M.rewrite()
  local status, action, path = route.action(ngx.req.get_method(), ngx.var.request_uri)
  if status ~= 200 then return deny(status) end
  if path ~= ngx.var.gw_route then return ngx.exec(path) end
  ngx.var.gw_action = action
end

-- True for at most 256 printable ASCII bytes, the usual model name (read without a pattern).
local function printable(s)
  if #s > 256 then return false end
  for i = 1, #s do
    local b = byte(s, i)
    if b < 32 or b > 126 then return false end
  end
  return true
end

-- Only "stream": true bodies change: the engine must report usage in its last chunk.
local function with_usage(body, doc)
  local options = doc.v.stream_options
  local usage = '{"include_usage":true}'
  if options then
    return sub(body, 1, options.s - 1) .. usage .. sub(body, options.e + 1)
  end
  return sub(body, 1, doc.s) .. '"stream_options":' .. usage .. "," .. sub(body, doc.s + 1)
end

function M.access()
  local ctx, var = ngx.ctx, ngx.var
  if route.query_carries_key(var.request_uri) then return deny(401) end
  local action = var.gw_action
  if action == "public" then return end
  local p = policy.get()
  -- A key, even one that fails, is the credential; only without one does a certificate count.
  local header = ngx.var.http_authorization
  local principal, class, credential
  if header ~= nil then
    principal, class = auth.principal(p, header)
    credential = "key"
  elseif var.ssl_client_verify == "SUCCESS" then
    principal, class = auth.certificate(p, var.ssl_client_s_dn, var.ssl_client_serial)
    credential = "certificate"
  end
  if not principal then
    ctx.gw_class = class
    return deny(401)
  end
  local entry = p.principals[principal]
  var.gw_principal, var.gw_roles, var.gw_credential = principal, entry.roles, credential
  if action == "read" then
    if #entry.read == 0 then return deny(403) end
    ctx.gw_visible = entry.allow.read
  else
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    -- client_body_buffer_size equals client_max_body_size: a body on disk is a misconfiguration.
    if not body and ngx.req.get_body_file() then return deny(413) end
    local keep = tonumber(var.gw_payload_max) or 0
    if keep > 0 and body then
      -- The body as the caller sent it, cut at gateway_audit_payload_max bytes.
      var.gw_request_body = sub(body, 1, keep)
      if #body > keep then var.gw_payload_truncated = "true" end
    end
    local doc = json.decode(body or "")
    local model = doc and doc.t == "object" and doc.v.model
    if not model or model.t ~= "string" or model.v == "" then return deny(400) end
    -- Model names are printable ASCII; anything else is masked so each log line stays JSON.
    var.gw_model = printable(model.v) and model.v or gsub(sub(model.v, 1, 256), "[^\32-\126]", "?")
    if not entry.allow[action][model.v] then return deny(403) end
    local stream = doc.v.stream
    if stream and stream.t == "true" then
      ctx.gw_stream = true
      ngx.req.set_body_data(with_usage(body, doc))
    end
  end
  local ok, retry_after, limit = limits.enter(ctx, principal, entry.limits)
  if not ok then
    ctx.gw_limit = limit
    return deny(429, retry_after)
  end
  ctx.gw_principal = principal
  var.gw_variant = policy.variant(var.gw_split, principal)
end

return M
