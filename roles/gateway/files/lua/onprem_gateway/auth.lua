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
local sub, find, lower, match, upper, gsub = string.sub, string.find, string.lower, string.match,
  string.upper, string.gsub

local M = {}
local NEGATIVE_TTL = 10

-- The key id of a "<prefix>_<12 hex>_<43 base64url>" key, or nil (_pki_secrets.key_id_of).
function M.key_id(key)
  local n = #key
  if n < 2 + 1 + 12 + 1 + 43 or n > 16 + 1 + 12 + 1 + 43 then return nil end
  if not find(sub(key, n - 42), "^[A-Za-z0-9_-]+$") then return nil end
  local prefix, key_id = match(sub(key, 1, n - 43), "^([a-z][a-z0-9]*)_([0-9a-f]+)_$")
  if not prefix or #prefix < 2 or #prefix > 16 or #key_id ~= 12 then return nil end
  return key_id
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
