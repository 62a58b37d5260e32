-- Path normalisation and routing with the answers of _gateway_policy.route_action, read from
-- the raw request line ($request_uri) so that '//', dot segments or percent-encoding cannot
-- make one request mean two paths.
local json = require "onprem_gateway.json"
local byte, sub, find, gsub = string.byte, string.sub, string.find, string.gsub
local lower, char, rep = string.lower, string.char, string.rep
local concat, tonumber = table.concat, tonumber

local M = {}

M.ROUTES = {
  ["/v1/models"] = { "GET", "read" },
  ["/v1/chat/completions"] = { "POST", "execute" },
  ["/v1/completions"] = { "POST", "execute" },
  ["/v1/embeddings"] = { "POST", "execute" },
  ["/health"] = { "GET", "public" },
}

local KEY_PARAMS = { key = true, api_key = true, apikey = true, ["api-key"] = true,
                     access_token = true, token = true, authorization = true }

local function unhex(h) return char(tonumber(h, 16)) end

function M.normalise(raw)
  if type(raw) ~= "string" or byte(raw, 1) ~= 47 or find(raw, "#", 1, true) then return nil end
  local q = find(raw, "?", 1, true)
  local path = q and sub(raw, 1, q - 1) or raw
  if find(path, "[^\33-\126]") then return nil end
  local at = find(path, "%", 1, true)
  while at do
    local h = sub(path, at + 1, at + 2)
    -- A decoded '/' or '%' would let one request mean two different paths.
    if not find(h, "^%x%x$") then return nil end
    local v = tonumber(h, 16)
    if v == 0x2F or v == 0x25 or v == 0x7F or v < 0x20 then return nil end
    at = find(path, "%", at + 3, true)
  end
  local decoded = gsub(path, "%%(%x%x)", unhex)
  if not json.utf8_valid(decoded) or find(decoded, "\\", 1, true) then return nil end
  local parts, pos = {}, 2
  while true do
    local slash = find(decoded, "/", pos, true)
    parts[#parts + 1] = sub(decoded, pos, slash and slash - 1 or -1)
    if not slash then break end
    pos = slash + 1
  end
  local segments = {}
  for _, segment in ipairs(parts) do
    if segment == ".." then
      if #segments == 0 then return nil end
      segments[#segments] = nil
    elseif segment ~= "" and segment ~= "." then
      segments[#segments + 1] = segment
    end
  end
  local last = parts[#parts]
  local trailing = (#segments > 0 and (last == "" or last == "." or last == "..")) and "/" or ""
  return "/" .. concat(segments, "/") .. trailing
end

-- status (200, 400, 404, 405), action, canonical route
function M.action(method, raw)
  -- A route as written is its own normal form: most requests need no normalising.
  local path = M.ROUTES[raw] and raw or M.normalise(raw)
  if not path then return 400 end
  local route = M.ROUTES[path]
  if not route then return 404 end
  if method ~= route[1] then return 405 end
  return 200, route[2], path
end

local SHAPE = "_" .. rep("[0-9a-f]", 12) .. "_"

-- Python's KEY_SHAPE, [a-z][a-z0-9]{1,15}_<12 hex>_, searched anywhere.
local function has_key_shape(s)
  local at = find(s, SHAPE)
  while at do
    for start = at - 2, at - 16, -1 do
      if start < 1 or not find(sub(s, start, at - 1), "^[a-z0-9]+$") then break end
      if find(sub(s, start, start), "^[a-z]$") then return true end
    end
    at = find(s, SHAPE, at + 1)
  end
  return false
end

-- True when the query holds anything that looks like an API key, as query_carries_key says.
function M.query_carries_key(raw)
  local q = find(raw, "?", 1, true)
  if not q then return false end
  local query = sub(raw, q + 1)
  if has_key_shape((gsub(query, "%%(%x%x)", unhex))) then return true end
  for field in (query .. "&"):gmatch("([^&]*)&") do
    if field ~= "" then
      local eq = find(field, "=", 1, true)
      local name = gsub(eq and sub(field, 1, eq - 1) or field, "%+", " ")
      -- U+212A KELVIN SIGN is the one non-ASCII letter whose lower case is ASCII ('k').
      name = lower((gsub(gsub(name, "%%(%x%x)", unhex), "\226\132\170", "k")))
      if KEY_PARAMS[name] then return true end
    end
  end
  return false
end

return M
