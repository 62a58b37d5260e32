-- Strict JSON reader that gives the verdicts of Python's json.loads on a UTF-8 body as
-- _gateway_policy.body_model uses it: duplicate keys, NaN/Infinity, control characters in
-- strings and trailing data are refused. Values come back as nodes {t, v, s, e}; s and e are
-- the byte span in the text, so callers can copy or replace a value without re-encoding it.
local byte, sub, find, char, concat = string.byte, string.sub, string.find, string.char, table.concat
local floor, tonumber = math.floor, tonumber

local M = {}
local MAX_DEPTH = 256
-- Python refuses to turn longer digit strings into an int (sys.int_info default).
local INT_DIGITS = 4300

function M.utf8_valid(s)
  local i = 1
  while true do
    i = find(s, "[\128-\255]", i)
    if not i then return true end
    local c, need, lo, hi = byte(s, i)
    if c >= 0xC2 and c <= 0xDF then need, lo, hi = 1, 0x80, 0xBF
    elseif c == 0xE0 then need, lo, hi = 2, 0xA0, 0xBF
    elseif c == 0xED then need, lo, hi = 2, 0x80, 0x9F  -- no surrogates
    elseif c >= 0xE1 and c <= 0xEF then need, lo, hi = 2, 0x80, 0xBF
    elseif c == 0xF0 then need, lo, hi = 3, 0x90, 0xBF
    elseif c >= 0xF1 and c <= 0xF3 then need, lo, hi = 3, 0x80, 0xBF
    elseif c == 0xF4 then need, lo, hi = 3, 0x80, 0x8F
    else return false end
    local b = byte(s, i + 1)
    if not b or b < lo or b > hi then return false end
    for k = 2, need do
      b = byte(s, i + k)
      if not b or b < 0x80 or b > 0xBF then return false end
    end
    i = i + need + 1
  end
end

-- Lone surrogates are kept (as Python keeps them), so equal keys stay equal byte strings.
local function code_point(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64) end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local ESCAPES = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t' }

-- The first byte at or after i that is not JSON whitespace (#s + 1 at the end). Most bodies have
-- none or one space between tokens: those are read byte by byte, which LuaJIT compiles, where a
-- pattern search would stop the trace.
local function ws(s, i)
  local c = byte(s, i)
  if c == 32 then
    i = i + 1
    c = byte(s, i)
  end
  if c ~= 32 and c ~= 9 and c ~= 10 and c ~= 13 then return c and i or #s + 1 end
  return find(s, "[^ \t\n\r]", i) or #s + 1
end

local function hex4(s, i)
  local h = sub(s, i, i + 3)
  return find(h, "^%x%x%x%x$") and tonumber(h, 16)
end

-- A string up to this long, closed before any escape or control character, is checked byte by
-- byte (compiled); a longer one, or one with escapes, takes the general loop (a C search).
local SHORT = 64

local function read_string(s, i)  -- s[i] is the opening quote
  local j = i + 1
  local q = find(s, '"', j, true)
  if not q then return nil end
  if q - j <= SHORT then
    local p, b = j, nil
    while p < q do
      b = byte(s, p)
      if b < 32 or b == 92 then break end
      p = p + 1
    end
    if p == q then return sub(s, j, q - 1), q + 1 end
  end
  local out = {}
  while true do
    local k = find(s, '[%z\1-\31"\\]', j)
    if not k or byte(s, k) < 32 then return nil end
    out[#out + 1] = sub(s, j, k - 1)
    if byte(s, k) == 34 then return concat(out), k + 1 end
    local e = sub(s, k + 1, k + 1)
    if e == "u" then
      local cp = hex4(s, k + 2)
      if not cp then return nil end
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF and sub(s, j, j + 1) == "\\u" then
        local low = hex4(s, j + 2)
        if not low then return nil end
        if low >= 0xDC00 and low <= 0xDFFF then
          cp, j = 0x10000 + (cp - 0xD800) * 1024 + (low - 0xDC00), j + 6
        end
      end
      out[#out + 1] = code_point(cp)
    else
      if not ESCAPES[e] then return nil end
      out[#out + 1], j = ESCAPES[e], k + 2
    end
  end
end

-- The index of the last digit of the run that starts at i (i - 1 when there is none).
local function digits_end(s, i)
  local b = byte(s, i)
  while b and b >= 48 and b <= 57 do
    i = i + 1
    b = byte(s, i)
  end
  return i - 1
end

-- The index of the number's last byte, or nil: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)?
local function read_number(s, i)
  local j = byte(s, i) == 45 and i + 1 or i
  local c, e = byte(s, j), nil
  if c == 48 then
    e = j
  elseif c and c >= 49 and c <= 57 then
    e = digits_end(s, j + 1)
  else
    return nil
  end
  local digits, fraction, exponent = e - j + 1, false, nil
  if byte(s, e + 1) == 46 then
    local f = digits_end(s, e + 2)
    if f >= e + 2 then e, fraction = f, true end
  end
  c = byte(s, e + 1)
  if c == 101 or c == 69 then
    local k = e + 2
    c = byte(s, k)
    if c == 43 or c == 45 then k = k + 1 end
    local x = digits_end(s, k)
    if x >= k then exponent = x end
  end
  if not fraction and not exponent and digits > INT_DIGITS then return nil end
  return exponent or e
end

local LITERALS = { [116] = "true", [102] = "false", [110] = "null" }

local function value(s, i, depth)
  i = ws(s, i)
  local c = byte(s, i)
  if c == 34 then
    local v, j = read_string(s, i)
    if not v then return nil end
    return { t = "string", v = v, s = i, e = j - 1 }, j
  elseif c == 123 or c == 91 then
    if depth >= MAX_DEPTH then return nil end
    local object, close = c == 123, c == 123 and 125 or 93
    local node = { t = object and "object" or "array", v = {}, s = i }
    i = ws(s, i + 1)
    if byte(s, i) == close then node.e = i; return node, i + 1 end
    while true do
      local key, item
      if object then
        if byte(s, i) ~= 34 then return nil end
        key, i = read_string(s, i)
        if not key then return nil end
        i = ws(s, i)
        if byte(s, i) ~= 58 then return nil end
        i = i + 1
      end
      item, i = value(s, i, depth + 1)
      if not item then return nil end
      if object then
        if node.v[key] then return nil end
        node.v[key] = item
      else
        node.v[#node.v + 1] = item
      end
      i = ws(s, i)
      c = byte(s, i)
      if c == close then node.e = i; return node, i + 1 end
      if c ~= 44 then return nil end
      i = ws(s, i + 1)
    end
  elseif LITERALS[c] then
    local word = LITERALS[c]
    if sub(s, i, i + #word - 1) ~= word then return nil end
    return { t = word, s = i, e = i + #word - 1 }, i + #word
  elseif c then
    local e = read_number(s, i)
    if not e then return nil end
    return { t = "number", v = sub(s, i, e), s = i, e = e }, e + 1
  end
  return nil
end

-- The document node, or nil when Python's json.loads (as body_model calls it) would refuse it.
function M.decode(text)
  if type(text) ~= "string" or not M.utf8_valid(text) then return nil end
  local node, i = value(text, 1, 0)
  if not node or ws(text, i) <= #text then return nil end
  return node
end

return M
