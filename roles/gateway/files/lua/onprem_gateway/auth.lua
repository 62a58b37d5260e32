-- API keys: only from "Authorization: Bearer", checked against the scrypt hash in the policy.
--
-- Verdicts are cached in the shared dict gw_auth under sha256(key), together with the policy
-- generation. A reload with a new policy (a revoked key, a removed principal) changes the
-- generation, so every cached verdict stops counting for the first request the new workers
-- serve; a revoked key id is also no longer in the policy at all. Without a reload nothing
-- changes: revocation takes effect when the role reloads nginx, and in-flight requests on
-- the old workers finish within worker_shutdown_timeout. A good verdict therefore needs no
-- expiry (the dict evicts the least recently used when full): scrypt blocks the worker for
-- tens of milliseconds, and an expiry would stall every connection of that worker once per
-- key and period. A key id the policy does not list costs no scrypt run at all; a wrong
-- secret for a listed key id is remembered NEGATIVE_TTL seconds, so replaying it costs none.
--
-- Client certificates: nginx has verified the chain against the CA file (ssl_verify_client
-- optional) before any Lua runs; the policy only maps the subject to a principal, so there is
-- nothing to cache.
local crypto = require "onprem_gateway.crypto"
local byte, sub, lower, upper, gsub = string.byte, string.sub, string.lower, string.upper, string.gsub

local M = {}
local NEGATIVE_TTL = 10

-- The key id of a "<prefix>_<12 hex>_<43 base64url>" key, or nil (_pki_secrets.key_id_of). Read
-- byte by byte: LuaJIT compiles that, where a pattern search would stop the trace.
local function base64url(b)
  return (b >= 97 and b <= 122) or (b >= 65 and b <= 90) or (b >= 48 and b <= 57) or b == 45 or b == 95
end

local function lower_hex(b)
  return (b >= 48 and b <= 57) or (b >= 97 and b <= 102)
end

function M.key_id(key)
  local n = #key
  if n < 2 + 1 + 12 + 1 + 43 or n > 16 + 1 + 12 + 1 + 43 then return nil end
  for i = n - 42, n do
    if not base64url(byte(key, i)) then return nil end
  end
  -- key = prefix .. "_" .. key id .. "_" .. secret; the bounds above make the prefix 2 to 16 long.
  local h = n - 43
  if byte(key, h) ~= 95 or byte(key, h - 13) ~= 95 then return nil end
  for i = h - 12, h - 1 do
    if not lower_hex(byte(key, i)) then return nil end
  end
  local b = byte(key, 1)
  if b < 97 or b > 122 then return nil end
  for i = 2, h - 14 do
    b = byte(key, i)
    if not ((b >= 97 and b <= 122) or (b >= 48 and b <= 57)) then return nil end
  end
  return sub(key, h - 12, h - 1)
end

-- The principal the Authorization header value proves, or nil and "revoked" when the key id is
-- a revoked one (its secret is not checked: the policy no longer holds its hash).
function M.principal(policy, header)
  if type(header) ~= "string" or lower(sub(header, 1, 7)) ~= "bearer " then return nil end
  local key = sub(header, 8)
  local key_id = M.key_id(key)
  if key_id and policy.revoked[key_id] then return nil, "revoked" end
  local entry = key_id and policy.keys[key_id]
  if not entry or not policy.principals[entry.principal] then return nil end
  local cache = ngx.shared.gw_auth
  local slot = crypto.sha256(key)
  local hit = cache:get(slot)
  if hit and sub(hit, 1, #policy.generation) == policy.generation then
    local who = sub(hit, #policy.generation + 2)
    return who == entry.principal and who or nil
  end
  local derived = crypto.scrypt(key, entry.salt, entry.n, entry.r, entry.p, #entry.hash)
  local ok = derived ~= nil and crypto.equal(derived, entry.hash)
  cache:set(slot, policy.generation .. " " .. (ok and entry.principal or ""), ok and 0 or NEGATIVE_TTL)
  return ok and entry.principal or nil
end

-- The principal a verified client certificate proves ($ssl_client_s_dn, $ssl_client_serial), or
-- nil and "revoked" for a revoked serial (_gateway_policy.serial_of: upper-case hex without
-- leading zeros), whatever its subject.
function M.certificate(policy, subject, serial)
  if type(subject) ~= "string" then return nil end
  if type(serial) == "string" then
    local canonical = gsub(upper(serial), "^0+", "")
    if policy.revoked_certificates[canonical == "" and "0" or canonical] then return nil, "revoked" end
  end
  local who = policy.certificates[subject]
  if not who or not policy.principals[who] then return nil end
  return who
end

return M
