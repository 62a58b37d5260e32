-- SHA-256 and scrypt from the OpenSSL libcrypto nginx already links, through the LuaJIT FFI.
local ffi = require "ffi"
local bit = require "bit"
local byte, format, gsub = string.byte, string.format, string.gsub

ffi.cdef [[
int EVP_PBE_scrypt(const char *pass, size_t passlen, const unsigned char *salt, size_t saltlen,
                   uint64_t N, uint64_t r, uint64_t p, uint64_t maxmem, unsigned char *key, size_t keylen);
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
]]

-- nginx's own symbols first; a build without libcrypto in its namespace loads it by soname.
local lib = ffi.C
if not pcall(function() return lib.EVP_PBE_scrypt end) then
  lib = ffi.load("libcrypto.so.3")
end

local M = {}
local digest = ffi.new("unsigned char[32]")

function M.sha256(text)
  lib.SHA256(text, #text, digest)
  return ffi.string(digest, 32)
end

function M.hex(raw)
  return (gsub(raw, ".", function(c) return format("%02x", byte(c)) end))
end

-- The same maxmem as _pki_secrets._scrypt, so every hash Python accepts is accepted here.
function M.scrypt(key, salt, n, r, p, length)
  local out = ffi.new("unsigned char[?]", length)
  if lib.EVP_PBE_scrypt(key, #key, salt, #salt, n, r, p, 128 * r * n * 2, out, length) ~= 1 then
    return nil
  end
  return ffi.string(out, length)
end

-- Time depends on the length only, never on where the strings differ.
function M.equal(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bit.bor(diff, bit.bxor(byte(a, i), byte(b, i))) end
  return diff == 0
end

return M
