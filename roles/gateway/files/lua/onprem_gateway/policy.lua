-- The compiled policy (_gateway_policy.compile_policy) and the A/B splits, read once per
-- nginx (re)load in init_by_lua; request handlers only look things up in them.
local cjson = require "cjson.safe"
local crypto = require "onprem_gateway.crypto"
local byte = string.byte

local M = {}
local current, splits = nil, {}

local function read_json(path)
  local f, err = io.open(path, "rb")
  if not f then error("gateway policy: cannot open " .. path .. ": " .. tostring(err)) end
  local text = f:read("*a")
  f:close()
  local data, derr = cjson.decode(text)
  if data == nil then error("gateway policy: " .. path .. " is not JSON: " .. tostring(derr)) end
  return data
end

local function set_of(list)
  local set = {}
  for _, item in ipairs(list) do set[item] = true end
  return set
end

-- Called from init_by_lua: a policy that cannot be read stops nginx from (re)loading.
function M.load(path, splits_path)
  local raw = read_json(path)
  if raw.version ~= 1 or type(raw.generation) ~= "string" then
    error("gateway policy: " .. path .. " is not a version 1 compiled policy")
  end
  local p = { generation = raw.generation, principals = {}, keys = {}, revoked = set_of(raw.revoked),
              models = set_of(raw.models or {}), certificates = raw.certificates or {},
              revoked_certificates = set_of(raw.revoked_certificates or {}) }
  for name, spec in pairs(raw.principals) do
    p.principals[name] = {
      roles = table.concat(spec.roles, ","),
      class = spec.roles[1] or "none", -- the metrics label (roles are sorted)
      read = spec.allow.read, -- ordered, for /v1/models
      allow = { read = set_of(spec.allow.read), execute = set_of(spec.allow.execute),
                admin = set_of(spec.allow.admin) },
      limits = spec.limits,
    }
  end
  for key_id, entry in pairs(raw.keys) do
    p.keys[key_id] = { principal = entry.principal, n = entry.n, r = entry.r, p = entry.p,
                       salt = ngx.decode_base64(entry.salt), hash = ngx.decode_base64(entry.hash) }
  end
  local loaded = {}
  if splits_path and splits_path ~= "" then
    for _, split in ipairs(read_json(splits_path)) do
      local total = 0
      for _, variant in ipairs(split.variants) do total = total + variant.weight end
      if total <= 0 then error("gateway split " .. tostring(split.name) .. ": weights add up to 0") end
      loaded[split.name] = { salt = split.salt, variants = split.variants, total = total, assigned = {} }
    end
  end
  current, splits = p, loaded
  return p
end

function M.get()
  return current
end

-- split_assign: the first 4 bytes of sha256(salt .. principal), big-endian, mod total weight.
local function assign(split, principal)
  local b1, b2, b3, b4 = byte(crypto.sha256(split.salt .. principal), 1, 4)
  local bucket = (((b1 * 256) + b2) * 256 + b3) * 256 + b4
  bucket = bucket % split.total
  for _, variant in ipairs(split.variants) do
    if bucket < variant.weight then return variant.name end
    bucket = bucket - variant.weight
  end
  return ""
end

-- The principal's variant, kept per split: principals come from the policy, so the table stays
-- as small as it is, and a reload starts workers with new splits.
function M.variant(split_name, principal)
  local split = splits[split_name]
  if not split or not principal then return "" end
  local known = split.assigned[principal]
  if not known then
    known = assign(split, principal)
    split.assigned[principal] = known
  end
  return known
end

return M
