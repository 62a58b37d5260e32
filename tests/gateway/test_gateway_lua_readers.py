"""The gateway's byte readers against their Python references, thousands of inputs at a time.

The strict JSON reader (json.lua) and the API key reader (auth.lua's key_id) read the request's
bytes one by one on their fast paths. An nginx on loopback runs them over a batch of inputs in one
request each; the verdicts, values and byte spans are compared with ``_strict_json.strict_loads``
(what ``_gateway_policy.body_model`` calls) and ``_pki_secrets.key_id_of``.
"""
import base64
import http.client
import json
import random

import pytest

import gateway_harness as harness
from ansible_collections.onprem.deepseek.plugins.module_utils import _gateway_policy as gp
from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets as secrets
from ansible_collections.onprem.deepseek.plugins.module_utils._strict_json import strict_loads

pytestmark = pytest.mark.skipif(harness.nginx_binary() is None or harness.module_dir() is None,
                                reason="nginx with the Lua module is not installed")

CONF = """
load_module {module_dir}/ndk_http_module.so;
load_module {module_dir}/ngx_http_lua_module.so;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
worker_processes 1;
events {{ worker_connections 16; }}
http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    access_log off;
    lua_package_path "{lua_dir}/?.lua;;";
    # Read by the master (root): the workers may not enter pytest's directory.
    init_by_lua_block {{ package.loaded.reader_probe = dofile("{prefix}/reader_probe.lua") }}
    client_max_body_size 64m;
    client_body_buffer_size 64m;
    server {{
        listen 127.0.0.1:{port};
        location = /decode {{ content_by_lua_block {{ require("reader_probe").run("decode") }} }}
        location = /key_id {{ content_by_lua_block {{ require("reader_probe").run("key_id") }} }}
        location = /normalise {{ content_by_lua_block {{ require("reader_probe").run("normalise") }} }}
    }}
}}
"""

# Runs a reader over a JSON list of base64 inputs; answers a JSON list of results. A JSON node
# comes back as {t, s, e, v} with strings in base64 and members as sorted [key, node] pairs.
PROBE = r"""
local cjson = require "cjson"
local json = require "onprem_gateway.json"
local auth = require "onprem_gateway.auth"
local route = require "onprem_gateway.route"
local M = {}

local function tree(node)
  local out = { t = node.t, s = node.s, e = node.e }
  if node.t == "string" then
    out.v = ngx.encode_base64(node.v)
  elseif node.t == "number" then
    out.v = node.v
  elseif node.t == "array" then
    out.v = {}
    for i, item in ipairs(node.v) do out.v[i] = tree(item) end
  elseif node.t == "object" then
    local keys = {}
    for key in pairs(node.v) do keys[#keys + 1] = key end
    table.sort(keys)
    out.v = {}
    for i, key in ipairs(keys) do out.v[i] = { ngx.encode_base64(key), tree(node.v[key]) } end
  end
  return out
end

function M.run(reader)
  ngx.req.read_body()
  local results = {}
  for i, item in ipairs(cjson.decode(ngx.req.get_body_data())) do
    local text = ngx.decode_base64(item)
    if reader == "decode" then
      local node = json.decode(text)
      results[i] = node and tree(node) or cjson.null
    elseif reader == "normalise" then
      results[i] = route.normalise(text) or cjson.null
    else
      results[i] = auth.key_id(text) or cjson.null
    end
  end
  ngx.say(cjson.encode(results))
end

return M
"""


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    """``call(reader, inputs)``: the reader's results for a list of byte strings."""
    prefix = tmp_path_factory.mktemp("readers")
    (prefix / "reader_probe.lua").write_text(PROBE)
    port = harness.free_port()
    conf = CONF.format(module_dir=harness.module_dir(), prefix=prefix, port=port, lua_dir=harness.LUA_DIR)
    (prefix / "nginx.conf").write_text(conf)
    proc, stderr = harness.start_nginx(prefix, prefix / "nginx.conf", port)

    def call(reader, inputs):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/" + reader, body=json.dumps([base64.b64encode(i).decode() for i in inputs]))
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        assert answer.status == 200, (prefix / "error.log").read_text()[-2000:]
        return json.loads(data)

    yield call
    proc.terminate()
    proc.wait(10)
    stderr.close()


# --- the JSON reader ---------------------------------------------------------------------------

def python_verdict(raw):
    """strict_loads' value for the bytes, or a marker when it (or UTF-8 decoding) refuses them."""
    try:
        return strict_loads(raw.decode("utf-8"))
    except ValueError:
        return REFUSED


REFUSED = object()


def same(raw, node, value):
    """True when the Lua node stands for ``value`` and its span re-reads as ``value``."""
    span = raw[node["s"] - 1:node["e"]]
    if python_verdict(span) != value:
        return False
    kind = node["t"]
    if kind == "string":
        return isinstance(value, str) and base64.b64decode(node["v"]) == value.encode("utf-8", "surrogatepass")
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and json.loads(node["v"]) == value
    if kind in ("true", "false", "null"):
        return value is {"true": True, "false": False, "null": None}[kind]
    members = node["v"] or []  # an empty Lua table comes back as {}
    if kind == "array":
        return isinstance(value, list) and len(members) == len(value) and all(
            same(raw, item, v) for item, v in zip(members, value))
    if not isinstance(value, dict) or len(members) != len(value):
        return False
    for key, item in members:
        key = base64.b64decode(key).decode("utf-8", "surrogatepass")
        if key not in value or not same(raw, item, value[key]):
            return False
    return True


def json_mismatches(readers, inputs):
    found = []
    for raw, node in zip(inputs, readers("decode", inputs)):
        expected = python_verdict(raw)
        if node is None:
            if expected is not REFUSED:
                found.append((raw[:80], "refused by Lua only"))
        elif expected is REFUSED:
            found.append((raw[:80], "refused by Python only"))
        elif not same(raw, node, expected):
            found.append((raw[:80], "different value or span"))
    return found


FIXED = [
    b"", b" ", b"0", b"-", b"-0", b"-01", b"01", b"1.", b"1.e5", b".5", b"1e", b"1e+", b"1E-0", b"-1.25E+07",
    b"1" * 4300, b"1" * 4301, b"1" * 4301 + b".0", b"1" * 4301 + b"e0", b"2.5e", b"1ee2", b"--1", b"+1",
    b'""', b'"a', b'"a\\"', b'"\\"', b'"a\\u00e9b"', b'"\\ud83d\\ude00"', b'"\\ud83d"', b'"\\udc00\\ud800"',
    b'"\\u12"', b'"\\u12G4"', b'"\t"', b'"a\x1fb"', b'"\x7f"', b'"\xc3\xa9"', b'"\xc3"', b'"\xed\xa0\x80"',
    b'"' + b"x" * 64 + b'"', b'"' + b"x" * 65 + b'"', b'"' + b"x" * 63 + b'\\n"', b'"' + b"x" * 70 + b'\\n"',
    b'"' + b"x" * 64 + b'\x01"', b'"' + b"x" * 65 + b'\x01"', b'"' + b"x" * 80 + b'\\', b"[", b"[]", b"[ ]",
    b"[1,]", b"[,1]", b"[1 2]", b"{}", b"{ }", b'{"a":1,}', b'{"a" : 1 , "b" :[ ] }', b'{"a":1,"a":2}',
    b'{"a":{"a":1},"b":{"a":2}}', b"\t{\n\"a\"\r:\t1 }\n", b"  1  ", b"1 2", b"true", b"tru", b"truex",
    b"nul", b"null ", b"NaN", b"Infinity", b"-Infinity", b"[" * 256 + b"]" * 256,
    b'{"model":"deepseek-r1","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}',
    b'{"model": "deepseek-r1", "stream": true, "stream_options": {"include_usage": false}}',
]

PIECES = [b"{", b"}", b"[", b"]", b":", b",", b" ", b"  ", b"\t", b"\n", b"\r", b'"', b"\\", b"\\u", b"0", b"1",
          b"-", b"+", b".", b"e", b"E", b"a", b"\x00", b"\x01", b"\x1f", b"\xc3\xa9", b"\xff", b"true", b"null"]


def random_string(chooser):
    length = chooser.choice([0, 3, 63, 64, 65, 200])
    return "".join(chooser.choice('ab "\\/\n\té\u2028\U0001F600x') for _n in range(length))


def random_value(chooser, depth=0):
    roll = chooser.random()
    if depth > 3 or roll < 0.35:
        scalars = [lambda: chooser.randint(-10 ** 6, 10 ** 6), lambda: chooser.uniform(-1e6, 1e6), lambda: None,
                   lambda: chooser.random() < 0.5, lambda: random_string(chooser)]
        return chooser.choice(scalars)()
    if roll < 0.65:
        return [random_value(chooser, depth + 1) for _n in range(chooser.randint(0, 4))]
    return {"".join(chooser.choice("abm") for _n in range(chooser.randint(1, 3))): random_value(chooser, depth + 1)
            for _m in range(chooser.randint(0, 4))}


def random_text(chooser):
    value = random_value(chooser)
    separators = chooser.choice([(",", ":"), (", ", ": "), (" ,\n", " :\t"), (",  ", ":  ")])
    raw = json.dumps(value, ensure_ascii=chooser.random() < 0.5, separators=separators).encode()
    for _n in range(chooser.choice([0, 0, 1, 2])):
        at = chooser.randint(0, len(raw))
        raw = raw[:at] + chooser.choice(PIECES) + raw[at + chooser.choice([0, 0, 1]):]
    return raw


def test_fixed_json_inputs_get_python_verdicts_values_and_spans(readers):
    assert json_mismatches(readers, FIXED) == []


def test_nesting_deeper_than_256_is_refused(readers):
    """A bound Python's reader does not have: 256 levels are read, 257 refused."""
    assert [node is None for node in readers("decode", [b"[" * n + b"]" * n for n in (256, 257)])] == [False, True]


def test_random_json_inputs_get_python_verdicts_values_and_spans(readers):
    """3,000 documents (fixed seed), about half damaged: refused and accepted ones both occur."""
    chooser = random.Random(11)
    inputs = [random_text(chooser) for _n in range(3000)]
    verdicts = {python_verdict(raw) is REFUSED for raw in inputs}
    assert verdicts == {True, False}
    assert json_mismatches(readers, inputs) == []


# --- the API key reader ------------------------------------------------------------------------

def python_key_id(text):
    try:
        return secrets.key_id_of(text)
    except secrets.SecretError:
        return None


KEY_CHARS = "abcdefz09AFZ_-.~/+=é"


def key_inputs(chooser):
    keys = [secrets.new_key(prefix)[0] for prefix in ("dsk", "ab", "a1", "p" * 16, "x9y8z7")]
    inputs = list(keys) + ["", "dsk", "ds_0123456789ab_" + "A" * 43, "d_0123456789ab_" + "A" * 43,
                           "p" * 17 + "_0123456789ab_" + "A" * 43, "1sk_0123456789ab_" + "A" * 43,
                           "dsk_0123456789AB_" + "A" * 43, "dsk_0123456789a_" + "A" * 44,
                           "dsk_0123456789abc_" + "A" * 42, "dsk__0123456789ab_" + "A" * 42,
                           "dsk_0123456789ab_" + "A" * 42, "dsk_0123456789ab_" + "A" * 44,
                           "dsk_0123456789ab__" + "A" * 42, "dsK_0123456789ab_" + "A" * 43]
    for _n in range(2000):
        key = list(chooser.choice(keys))
        for _m in range(chooser.choice([1, 1, 2])):
            at = chooser.randrange(len(key))
            edit = chooser.random()
            if edit < 0.6:
                key[at] = chooser.choice(KEY_CHARS)
            elif edit < 0.8:
                key.insert(at, chooser.choice(KEY_CHARS))
            else:
                del key[at]
        inputs.append("".join(key))
    return inputs


def test_key_ids_are_read_as_python_reads_them(readers):
    inputs = key_inputs(random.Random(5))
    expected = [python_key_id(text) for text in inputs]
    assert {e is None for e in expected} == {True, False}
    got = readers("key_id", [text.encode() for text in inputs])
    assert [(t, g, e) for t, g, e in zip(inputs, got, expected) if g != e] == []


# --- routes ------------------------------------------------------------------------------------

def test_each_route_is_its_own_normal_form(readers):
    """route.action skips normalising a request line that is a route as written."""
    routes = sorted(gp.ROUTES)
    assert readers("normalise", [r.encode() for r in routes]) == routes
    assert [gp.normalise_path(r)[0] for r in routes] == routes
