# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who may call which model through the gateway, at what rate, and which A/B variant they get.

``compile_policy`` turns the ``gateway_roles``, ``gateway_principals`` and ``gateway_keys``
variables into one JSON table that the nginx Lua code only looks things up in. ``decide`` is the
reference answer for one request (status, principal, model) that the Lua code and the scenario
matrix are checked against. Anything not granted is denied. Only scrypt hashes of API keys are
inputs, so the table never holds a key in clear. A principal may also be proved by a client
certificate the gateway's CA file verifies: its subject, exactly as nginx's ``$ssl_client_s_dn``
prints it (RFC 2253), names the principal; a revoked serial (``$ssl_client_serial``) never does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from fnmatch import fnmatchcase
from urllib.parse import parse_qsl, unquote

from ansible_collections.onprem.deepseek.plugins.module_utils._pki_secrets import (
    SecretError,
    key_id_of,
    parse_hash,
    verify_key,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._strict_json import strict_loads

POLICY_VERSION = 1
# No proxied route needs admin yet; it is compiled for the management endpoints to come.
ACTIONS = ("read", "execute", "admin")
LIMITS = ("requests_per_second", "tokens_per_minute", "concurrency")
DEFAULT_LIMITS = {"requests_per_second": 10, "tokens_per_minute": 100000, "concurrency": 4}
# Lua numbers are doubles: keep every limit far inside their exact integer range.
LIMIT_MAX = 10 ** 9
MAX_WEIGHT = 10000
MAX_SUBJECT = 1024
# RFC 5280: a serial is at most 20 octets (leading zeros aside).
MAX_SERIAL_DIGITS = 40
MODEL_MAX = 128
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# A '/' must be followed by a letter or digit: no '//', no '/.', no '..' segment.
MODEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.:-]|/(?=[A-Za-z0-9]))*\Z")
# Only '*' is a wildcard; '?' and '[...]' are refused so patterns read the same in Lua.
PATTERN_RE = re.compile(r"^[A-Za-z0-9_.:/*-]+\Z")
KEY_ID_RE = re.compile(r"^[0-9a-f]{12}\Z")
# RFC 2253 as nginx prints it: "type=value,...", printable ASCII only (it escapes the rest as
# \XX). Refuses a bare common name, OpenSSL's "/O=.." and "CN = .." forms, and spaces at the ends.
SUBJECT_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)=[\x20-\x7e]*[\x21-\x7e]\Z")
SERIAL_RE = re.compile(r"^[0-9A-Fa-f]+(?::[0-9A-Fa-f]+)*\Z")
ROUTES = {
    "/v1/models": ("GET", "read"),
    "/v1/chat/completions": ("POST", "execute"),
    "/v1/completions": ("POST", "execute"),
    "/v1/embeddings": ("POST", "execute"),
    "/health": ("GET", "public"),
}
# Query parameters clients use to pass a key, and the shape of a key wherever it appears.
KEY_PARAMS = frozenset(("key", "api_key", "apikey", "api-key", "access_token", "token", "authorization"))
KEY_SHAPE = re.compile(r"[a-z][a-z0-9]{1,15}_[0-9a-f]{12}_")
_PCT_BAD = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


class GatewayPolicyError(ValueError):
    """A gateway variable that cannot be compiled; the message starts with the variable path."""


def _fail(where, message):
    raise GatewayPolicyError("%s: %s" % (where, message))


def _mapping(value, where, allowed=None, required=()):
    if not isinstance(value, dict):
        _fail(where, "must be a mapping, got %s" % type(value).__name__)
    unknown = sorted(set(value) - set(allowed), key=str) if allowed is not None else ()
    if unknown:
        _fail(where, "unknown field %r (allowed: %s)" % (unknown[0], ", ".join(allowed)))
    for field in required:
        if field not in value:
            _fail(where, "missing field %r" % field)
    return value


def _list(value, where, non_empty=False):
    if not isinstance(value, list):
        _fail(where, "must be a list, got %s" % type(value).__name__)
    if non_empty and not value:
        _fail(where, "must not be empty")
    return value


def _text(value, where, pattern, limit, what):
    if not isinstance(value, str) or len(value) > limit or not pattern.match(value):
        _fail(where, "%r %s" % (value, what))
    return value


def _name(value, where):
    return _text(value, where, NAME_RE, 64, "must be 1-64 letters, digits, '_', '.' or '-', not starting with '_.-'")


def _int(value, where, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(where, "%r must be an integer from %d to %d" % (value, low, high))
    return value


def _limits(value, where, base):
    limits = dict(base)
    for field, amount in _mapping(value, where, LIMITS).items():
        limits[field] = _int(amount, "%s.%s" % (where, field), 1, LIMIT_MAX)
    return limits


def _compile_roles(roles, models, unmatched):
    compiled = {}
    for role in _mapping(roles, "gateway_roles"):
        _name(role, "gateway_roles")
    for role, spec in sorted(roles.items()):
        where = "gateway_roles.%s" % role
        _mapping(spec, where, ("resources", "actions"), ("resources", "actions"))
        granted = {}
        for i, action in enumerate(_list(spec["actions"], where + ".actions", non_empty=True)):
            if action not in ACTIONS:
                _fail("%s.actions[%d]" % (where, i), "unknown action %r (%s)" % (action, ", ".join(ACTIONS)))
            granted[action] = set()
        matched = set()
        for i, resource in enumerate(_list(spec["resources"], where + ".resources", non_empty=True)):
            at = "%s.resources[%d]" % (where, i)
            if not isinstance(resource, str) or not resource.startswith("model/"):
                _fail(at, "%r must start with 'model/'" % (resource,))
            pattern = resource[len("model/"):]
            if len(pattern) > MODEL_MAX or not PATTERN_RE.match(pattern):
                _fail(at, "%r: only letters, digits, '_.:/-' and the '*' wildcard may follow 'model/'" % resource)
            hits = {m for m in models if fnmatchcase(m, pattern)}
            if not hits:
                unmatched.append(at)
            matched |= hits
        compiled[role] = {action: matched for action in granted}
    return compiled


def _add_key(stored, where, principal, index):
    if not isinstance(stored, str):
        _fail(where, "must be a stored scrypt hash string")
    try:
        record = parse_hash(stored)
    except SecretError as exc:
        raise GatewayPolicyError("%s: %s" % (where, exc)) from None
    key_id = record["key_id"]
    if key_id in index:
        _fail(where, "key id %s is already a key of principal %r" % (key_id, index[key_id]["principal"]))
    index[key_id] = {"principal": principal, "n": record["n"], "r": record["r"], "p": record["p"],
                     "salt": base64.b64encode(record["salt"]).decode("ascii"),
                     "hash": base64.b64encode(record["hash"]).decode("ascii")}


def _subject(value, where):
    if not isinstance(value, str) or len(value) > MAX_SUBJECT or not SUBJECT_RE.match(value):
        _fail(where, "%r must be a certificate subject as nginx's $ssl_client_s_dn prints it (RFC 2253, most "
                     "specific first, e.g. 'CN=analyst-app,O=onprem.deepseek'): printable ASCII (nginx "
                     "escapes other bytes as \\XX), no spaces at the ends" % (value,))
    return value


def serial_of(value):
    """A certificate serial in hex (``openssl x509 -serial``, ``$ssl_client_serial``, or with ':'
    between octets) as the policy holds it: upper case, no leading zeros; None when not one."""
    if not isinstance(value, str) or not SERIAL_RE.match(value):
        return None
    digits = value.replace(":", "").upper().lstrip("0") or "0"
    return digits if len(digits) <= MAX_SERIAL_DIGITS else None


def compile_policy(roles, principals, keys, models, defaults=None):
    """The table the gateway enforces, with a ``generation`` that changes with any change to it.

    ``keys`` (``gateway_keys``) maps principal names to further stored hashes, on top of each
    principal's own ``keys``; ``defaults`` (``gateway_default_limits``) fills limits a principal
    leaves out. A revoked key id is listed in ``revoked`` and left out of the key index.
    ``certificates`` maps each client certificate subject to its principal; a revoked serial is in
    ``revoked_certificates`` whichever principal lists it.
    """
    served = set()
    for i, model in enumerate(_list(models, "models")):
        if _text(model, "models[%d]" % i, MODEL_RE, MODEL_MAX, "is not a model name (letters, digits, '_.:-', "
                 "single '/' separators)") in served:
            _fail("models[%d]" % i, "duplicate model %r" % model)
        served.add(model)
    base = _limits(defaults if defaults is not None else {}, "gateway_default_limits", DEFAULT_LIMITS)
    unmatched = []
    grants = _compile_roles(roles if roles is not None else {}, served, unmatched)
    table, index, revoked, subjects, revoked_serials = {}, {}, set(), {}, set()
    for i, spec in enumerate(_list(principals, "gateway_principals")):
        where = "gateway_principals[%d]" % i
        _mapping(spec, where, ("name", "roles", "keys", "revoked_keys", "limits", "client_certificates",
                               "revoked_certificates"), ("name", "roles"))
        name = _name(spec["name"], where + ".name")
        if name in table:
            _fail(where + ".name", "duplicate principal %r" % name)
        allow = {action: set() for action in ACTIONS}
        names = []
        for j, role in enumerate(_list(spec["roles"], where + ".roles")):
            at = "%s.roles[%d]" % (where, j)
            if not isinstance(role, str) or role not in grants:
                _fail(at, "unknown role %r" % (role,))
            if role in names:
                _fail(at, "duplicate role %r" % role)
            names.append(role)
            for action, hits in grants[role].items():
                allow[action] |= hits
        for j, stored in enumerate(_list(spec.get("keys", []), where + ".keys")):
            _add_key(stored, "%s.keys[%d]" % (where, j), name, index)
        for j, key_id in enumerate(_list(spec.get("revoked_keys", []), where + ".revoked_keys")):
            if not isinstance(key_id, str) or not KEY_ID_RE.match(key_id):
                _fail("%s.revoked_keys[%d]" % (where, j), "%r is not a 12-hex-digit key id" % (key_id,))
            revoked.add(key_id)
        own = []
        for j, subject in enumerate(_list(spec.get("client_certificates", []), where + ".client_certificates")):
            at = "%s.client_certificates[%d]" % (where, j)
            if _subject(subject, at) in subjects:
                _fail(at, "subject %r already belongs to principal %r" % (subject, subjects[subject]))
            subjects[subject] = name
            own.append(subject)
        for j, serial in enumerate(_list(spec.get("revoked_certificates", []), where + ".revoked_certificates")):
            canonical = serial_of(serial)
            if canonical is None:
                _fail("%s.revoked_certificates[%d]" % (where, j), "%r is not a certificate serial: a quoted hex "
                      "string of at most %d digits, ':' between octets allowed" % (serial, MAX_SERIAL_DIGITS))
            revoked_serials.add(canonical)
        table[name] = {"roles": sorted(names), "allow": {a: sorted(m) for a, m in allow.items()},
                       "limits": _limits(spec.get("limits", {}), where + ".limits", base),
                       "client_certificates": sorted(own)}
    keys = _mapping(keys if keys is not None else {}, "gateway_keys")
    for owner in sorted(keys, key=str):
        if owner not in table:
            _fail("gateway_keys.%s" % owner, "unknown principal %r" % (owner,))
        for j, stored in enumerate(_list(keys[owner], "gateway_keys.%s" % owner)):
            _add_key(stored, "gateway_keys.%s[%d]" % (owner, j), owner, index)
    policy = {"version": POLICY_VERSION, "models": sorted(served), "principals": table,
              "keys": {k: v for k, v in index.items() if k not in revoked}, "revoked": sorted(revoked),
              "certificates": subjects, "revoked_certificates": sorted(revoked_serials), "unmatched": unmatched}
    canonical = json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    policy["generation"] = hashlib.sha256(canonical.encode("ascii")).hexdigest()
    return policy


def normalise_path(raw):
    """``(path, query)`` with the path decoded once and dot segments resolved; None when refused."""
    if not isinstance(raw, str) or not raw.startswith("/") or "#" in raw:
        return None
    path, _sep, query = raw.partition("?")
    if any(not 33 <= ord(c) <= 126 for c in path) or _PCT_BAD.search(path):
        return None
    # A decoded '/' or '%' would let one request mean two different paths.
    if any(int(h, 16) in (0x2F, 0x25, 0x7F) or int(h, 16) < 0x20 for h in _PCT.findall(path)):
        return None
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\\" in decoded:
        return None
    segments = []
    parts = decoded.split("/")[1:]
    for segment in parts:
        if segment == "..":
            if not segments:
                return None
            segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    trailing = "/" if segments and parts[-1] in ("", ".", "..") else ""
    return "/" + "/".join(segments) + trailing, query


def route_action(method, path):
    """``(status, action)``: 200 with read/execute/public, 400 bad path, 404 unknown, 405 wrong method."""
    normal = normalise_path(path)
    if normal is None:
        return 400, None
    route = ROUTES.get(normal[0])
    if route is None:
        return 404, None
    if method != route[0]:
        return 405, None
    return 200, route[1]


def query_carries_key(path):
    """True when the query string holds anything that looks like an API key (they leak into logs)."""
    query = path.partition("?")[2] if isinstance(path, str) else ""
    return bool(KEY_SHAPE.search(unquote(query))) or any(name.lower() in KEY_PARAMS for name, _value in parse_qsl(query, keep_blank_values=True))


def authenticate(policy, authorization):
    """The principal an ``Authorization: Bearer <key>`` header value proves, or None."""
    if not isinstance(authorization, str) or authorization[:7].lower() != "bearer ":
        return None
    key = authorization[7:]
    try:
        key_id = key_id_of(key)
    except SecretError:
        return None
    entry = policy["keys"].get(key_id)
    if key_id in policy["revoked"] or entry is None or entry["principal"] not in policy["principals"]:
        return None
    stored = "scrypt$%d$%d$%d$%s$%s$%s" % (entry["n"], entry["r"], entry["p"], key_id, entry["salt"], entry["hash"])
    return entry["principal"] if verify_key(key, stored) else None


def authenticate_certificate(policy, certificate):
    """``(principal, revoked)`` for a client certificate: ``certificate`` holds what nginx reports,
    ``verify`` ($ssl_client_verify), ``subject`` ($ssl_client_s_dn) and ``serial`` ($ssl_client_serial).
    Only a verified certificate counts; a revoked serial is refused whatever its subject."""
    if not isinstance(certificate, dict) or certificate.get("verify") != "SUCCESS":
        return None, False
    serial = serial_of(certificate.get("serial"))
    if serial is not None and serial in policy.get("revoked_certificates", ()):
        return None, True
    principal = policy.get("certificates", {}).get(certificate.get("subject"))
    return (principal if principal in policy["principals"] else None), False


def body_model(body):
    """The ``model`` of a JSON object body, or None when the body does not name one unambiguously."""
    if not isinstance(body, (bytes, bytearray)):
        return None
    try:
        # Duplicate fields are refused: two parsers could pick different ones.
        data = strict_loads(bytes(body).decode("utf-8"))
    except ValueError:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) and model else None


def visible_models(policy, principal):
    """The models ``GET /v1/models`` lists for ``principal``: those it may read."""
    entry = policy["principals"].get(principal)
    return list(entry["allow"]["read"]) if entry else []


def decide(policy, key, method, path, body_bytes, certificate=None):
    """``(status, principal, model)`` for one request; ``key`` is the Authorization header value
    (None: no header), ``certificate`` what nginx reports of a client certificate, as for
    ``authenticate_certificate`` (None: the connection offered none).

    Checked in this order: a client certificate that failed verification (400, nginx answers it
    before any route), path and route (400/404/405), a key in the query (401), public routes
    (200), the credential (401), the body (400), the grant (403). The credential is the key when
    there is an Authorization header, even one that fails; only without one does a verified
    certificate count.
    """
    verify = certificate.get("verify") if isinstance(certificate, dict) else None
    if verify not in (None, "NONE", "SUCCESS"):
        return 400, None, None
    status, action = route_action(method, path)
    if status != 200:
        return status, None, None
    if query_carries_key(path):
        return 401, None, None
    if action == "public":
        return 200, None, None
    if key is None:
        principal = authenticate_certificate(policy, certificate)[0]
    else:
        principal = authenticate(policy, key)
    if principal is None:
        return 401, None, None
    if action == "read":
        return (200 if visible_models(policy, principal) else 403), principal, None
    model = body_model(body_bytes)
    if model is None:
        return 400, principal, None
    return (200 if model in policy["principals"][principal]["allow"][action] else 403), principal, model


def check_split(split, where):
    """Refuse a split whose variants cannot be assigned (bad names, weights, or all weights zero)."""
    _mapping(split, where, ("name", "variants", "salt"), ("name", "variants", "salt"))
    _name(split["name"], where + ".name")
    if not isinstance(split["salt"], str) or not split["salt"]:
        _fail(where + ".salt", "must be a non-empty string")
    seen = set()
    for i, variant in enumerate(_list(split["variants"], where + ".variants", non_empty=True)):
        at = "%s.variants[%d]" % (where, i)
        _mapping(variant, at, ("name", "weight"), ("name", "weight"))
        if _name(variant["name"], at + ".name") in seen:
            _fail(at + ".name", "duplicate variant %r" % variant["name"])
        seen.add(variant["name"])
        _int(variant["weight"], at + ".weight", 0, MAX_WEIGHT)
    if sum(v["weight"] for v in split["variants"]) <= 0:
        _fail(where + ".variants", "weights add up to 0: no variant can be assigned")
    return split


def compile_splits(splits):
    """Check every entry of ``gateway_splits``; split names must be unique."""
    names = set()
    for i, split in enumerate(_list(splits, "gateway_splits")):
        check_split(split, "gateway_splits[%d]" % i)
        if split["name"] in names:
            _fail("gateway_splits[%d].name" % i, "duplicate split %r" % split["name"])
        names.add(split["name"])
    return splits


def split_assign(principal, split, where="gateway_split"):
    """The variant ``principal`` always gets: sha256(salt + principal), first 4 bytes, mod total weight.

    Four bytes keep the arithmetic exact in Lua; the modulo bias is below total/2**32.
    """
    check_split(split, where)
    if not isinstance(principal, str) or not principal:
        _fail(where, "principal must be a non-empty string")
    total = sum(v["weight"] for v in split["variants"])
    digest = hashlib.sha256((split["salt"] + principal).encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:4], "big") % total
    for variant in split["variants"]:
        if bucket < variant["weight"]:
            return variant["name"]
        bucket -= variant["weight"]
    raise AssertionError("bucket beyond total weight")  # unreachable: bucket < total
