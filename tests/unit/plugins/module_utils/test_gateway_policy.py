"""The gateway policy: compiling roles and principals, routing, the request oracle, A/B splits."""
import base64
import copy
import hashlib
import json

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets as secrets
from ansible_collections.onprem.deepseek.plugins.module_utils._gateway_policy import (
    DEFAULT_LIMITS,
    LIMIT_MAX,
    MAX_SERIAL_DIGITS,
    MAX_SUBJECT,
    MAX_WEIGHT,
    MODEL_MAX,
    GatewayPolicyError,
    compile_policy,
    compile_splits,
    authenticate_certificate,
    decide,
    normalise_path,
    query_carries_key,
    route_action,
    serial_of,
    split_assign,
    visible_models,
)

MODELS = ["deepseek-r1", "deepseek-coder-v2", "deepseek-coder-lite", "deepseek-ai/DeepSeek-V3"]
CODERS = sorted(m for m in MODELS if m.startswith("deepseek-coder"))
CHAT = "/v1/chat/completions"


def roles():
    return {
        "reader": {"resources": ["model/*"], "actions": ["read"]},
        "r1-user": {"resources": ["model/deepseek-r1"], "actions": ["read", "execute"]},
        "coder": {"resources": ["model/deepseek-coder*"], "actions": ["execute"]},
        "ops": {"resources": ["model/*"], "actions": ["admin"]},
    }


@pytest.fixture(scope="module")
def keys():
    """Five real keys and their stored hashes (scrypt is slow: made once)."""
    made = {}
    for name in ("alice", "bob", "carol", "carol-old", "dave"):
        key, key_id = secrets.new_key("dsk")
        made[name] = {"key": key, "id": key_id, "stored": secrets.hash_key(key)}
    return made


def principals(keys):
    return [
        {"name": "alice", "roles": ["reader", "coder"], "keys": [keys["alice"]["stored"]],
         "limits": {"concurrency": 2}, "client_certificates": ["CN=alice,O=Example", "CN=alice-laptop,O=Example"]},
        {"name": "bob", "roles": ["coder"], "keys": [keys["bob"]["stored"]]},
        {"name": "carol", "roles": ["r1-user"], "keys": [keys["carol"]["stored"], keys["carol-old"]["stored"]],
         "revoked_keys": [keys["carol-old"]["id"]], "client_certificates": ["CN=carol,O=Example"],
         "revoked_certificates": ["00:1f"]},
        {"name": "dave", "roles": []},
    ]


@pytest.fixture
def policy(keys):
    # Compiled per test (it takes no time): ./dev mutate credits what a module-scoped fixture runs to
    # the first test that asks for it only, so the other tests would not see a mutant of compile_policy.
    return compile_policy(roles(), principals(keys), {"dave": [keys["dave"]["stored"]]}, MODELS,
                          {"requests_per_second": 5})


def bearer(keys, name):
    return "Bearer " + keys[name]["key"]


def body(model, **extra):
    return json.dumps(dict(extra, model=model)).encode()


# --- compile_policy -----------------------------------------------------------------------------

def test_grants_are_resolved_per_action_and_everything_else_is_denied(policy):
    alice = policy["principals"]["alice"]
    assert alice["roles"] == ["coder", "reader"]
    assert alice["allow"] == {"read": sorted(MODELS), "execute": CODERS, "admin": []}
    assert policy["principals"]["carol"]["allow"] == {"read": ["deepseek-r1"], "execute": ["deepseek-r1"], "admin": []}
    assert policy["principals"]["dave"]["allow"] == {"read": [], "execute": [], "admin": []}
    json.dumps(policy)


def test_limits_fill_from_defaults_then_built_in_values(policy, keys):
    assert policy["principals"]["alice"]["limits"] == dict(DEFAULT_LIMITS, requests_per_second=5, concurrency=2)
    assert policy["principals"]["bob"]["limits"] == dict(DEFAULT_LIMITS, requests_per_second=5)
    assert compile_policy(roles(), principals(keys)[1:2], None, MODELS)["principals"]["bob"]["limits"] == DEFAULT_LIMITS


def test_key_index_holds_only_hashes_and_leaves_revoked_keys_out(policy, keys):
    for name in ("alice", "bob", "carol", "dave"):
        entry = policy["keys"][keys[name]["id"]]
        record = secrets.parse_hash(keys[name]["stored"])
        assert entry == {"principal": name.split("-", maxsplit=1)[0], "n": record["n"], "r": record["r"], "p": record["p"],
                         "salt": base64.b64encode(record["salt"]).decode(),
                         "hash": base64.b64encode(record["hash"]).decode()}
    assert keys["carol-old"]["id"] not in policy["keys"]
    assert policy["revoked"] == [keys["carol-old"]["id"]]
    text = json.dumps(policy)
    assert not any(k["key"].split("_", 2)[2] in text for k in keys.values())


def test_client_certificate_index_and_revoked_serials(policy):
    assert policy["certificates"] == {"CN=alice,O=Example": "alice", "CN=alice-laptop,O=Example": "alice",
                                      "CN=carol,O=Example": "carol"}
    assert policy["principals"]["alice"]["client_certificates"] == ["CN=alice,O=Example", "CN=alice-laptop,O=Example"]
    assert policy["principals"]["bob"]["client_certificates"] == []
    assert policy["revoked_certificates"] == ["1F"]


@pytest.mark.parametrize("raw,canonical", [
    ("1F", "1F"), ("1f", "1F"), ("001F", "1F"), ("00:1f", "1F"), ("0", "0"), ("00", "0"), ("0A", "A"),
    ("5A:3F:00", "5A3F00"), ("0" + "F" * MAX_SERIAL_DIGITS, "F" * MAX_SERIAL_DIGITS),
    ("F" * (MAX_SERIAL_DIGITS + 1), None), ("", None), ("0x1F", None), ("1F:", None), (":1F", None), ("1F::2", None),
    ("1F\n", None), (" 1F", None), ("-1F", None), ("1G", None), (31, None), (None, None),
])
def test_serial_of(raw, canonical):
    assert serial_of(raw) == canonical


def test_star_is_the_only_wildcard_and_crosses_slashes(keys):
    r = {"all": {"resources": ["model/*"], "actions": ["read"]},
         "org": {"resources": ["model/deepseek-ai/*"], "actions": ["read"]}}
    ps = [{"name": "a", "roles": ["all"]}, {"name": "b", "roles": ["org"]}]
    compiled = compile_policy(r, ps, None, MODELS)
    assert compiled["principals"]["a"]["allow"]["read"] == sorted(MODELS)
    assert compiled["principals"]["b"]["allow"]["read"] == ["deepseek-ai/DeepSeek-V3"]
    for pattern in ("model/deepseek-r?", "model/deepseek-[rc]1"):
        with pytest.raises(GatewayPolicyError, match=r"gateway_roles\.x\.resources\[0\]: .*wildcard"):
            compile_policy({"x": {"resources": [pattern], "actions": ["read"]}}, [], None, MODELS)


def test_patterns_that_match_no_served_model_are_reported():
    r = {"x": {"resources": ["model/deepseek-r1", "model/llama*"], "actions": ["read"]}}
    assert compile_policy(r, [], None, MODELS)["unmatched"] == ["gateway_roles.x.resources[1]"]
    assert compile_policy(r, [], None, MODELS + ["llama-3"])["unmatched"] == []


def test_generation_is_the_hash_of_everything_else_and_follows_every_change(policy, keys):
    rest = {k: v for k, v in policy.items() if k != "generation"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
    assert policy["generation"] == hashlib.sha256(canonical).hexdigest()

    def gen(ps=None, extra=None, models=None, defaults=None):
        return compile_policy(roles(), ps or principals(keys), extra, MODELS if models is None else models,
                              defaults)["generation"]

    base = gen()
    assert gen() == base
    reordered = principals(keys)
    reordered[0]["roles"] = list(reversed(reordered[0]["roles"]))
    assert gen(reordered) == base
    changed = principals(keys)
    changed[1]["limits"] = {"concurrency": 3}
    revoked = principals(keys)
    revoked[1]["revoked_keys"] = [keys["bob"]["id"]]
    certified = principals(keys)
    certified[1]["client_certificates"] = ["CN=bob,O=Example"]
    serial = principals(keys)
    serial[1]["revoked_certificates"] = ["2A"]
    variants = [gen(changed), gen(revoked), gen(extra={"dave": [keys["dave"]["stored"]]}),
                gen(models=MODELS + ["other"]), gen(defaults={"concurrency": 1}), gen(certified), gen(serial)]
    assert len({base, *variants}) == len(variants) + 1


def bad_hash(n):
    return "scrypt$%d$8$1$0123456789ab$AAAA$AAAA" % n


@pytest.mark.parametrize("edit,message", [
    (lambda r, p, k: r.__setitem__("bad role", r.pop("ops")), r"^gateway_roles: 'bad role' must be"),
    (lambda r, p, k: r["reader"].__setitem__("actions", ["read", "write"]),
     r"^gateway_roles\.reader\.actions\[1\]: unknown action 'write'"),
    (lambda r, p, k: r["reader"].__setitem__("actions", []), r"^gateway_roles\.reader\.actions: must not be empty"),
    (lambda r, p, k: r["reader"].__setitem__("resources", []),
     r"^gateway_roles\.reader\.resources: must not be empty"),
    (lambda r, p, k: r["reader"].__setitem__("resources", ["models/x"]),
     r"^gateway_roles\.reader\.resources\[0\]: 'models/x' must start with 'model/'"),
    (lambda r, p, k: r["reader"].__setitem__("resources", ["model/"]), r"^gateway_roles\.reader\.resources\[0\]"),
    (lambda r, p, k: r["reader"].__setitem__("resources", ["model/" + "a" * (MODEL_MAX + 1)]),
     r"^gateway_roles\.reader\.resources\[0\]"),
    (lambda r, p, k: r["reader"].__setitem__("resource", ["model/*"]),
     r"^gateway_roles\.reader: unknown field 'resource'"),
    (lambda r, p, k: r.__setitem__("ops", ["model/*"]), r"^gateway_roles\.ops: must be a mapping"),
    (lambda r, p, k: p[1].__setitem__("roles", ["auditor"]),
     r"^gateway_principals\[1\]\.roles\[0\]: unknown role 'auditor'"),
    (lambda r, p, k: p[1].__setitem__("roles", ["coder", "coder"]),
     r"^gateway_principals\[1\]\.roles\[1\]: duplicate role 'coder'"),
    (lambda r, p, k: p[3].__setitem__("name", "alice"), r"^gateway_principals\[3\]\.name: duplicate principal 'alice'"),
    (lambda r, p, k: p[3].__setitem__("name", "dave smith"), r"^gateway_principals\[3\]\.name: 'dave smith'"),
    (lambda r, p, k: p[3].__setitem__("name", "d" * 65), r"^gateway_principals\[3\]\.name"),
    (lambda r, p, k: p[3].__setitem__("name", "dave\n"), r"^gateway_principals\[3\]\.name"),
    (lambda r, p, k: p[3].__setitem__("name", "_dave"), r"^gateway_principals\[3\]\.name"),
    (lambda r, p, k: p[3].pop("roles"), r"^gateway_principals\[3\]: missing field 'roles'"),
    (lambda r, p, k: p[3].__setitem__("role", []), r"^gateway_principals\[3\]: unknown field 'role'"),
    (lambda r, p, k: p[1]["keys"].append(k["alice"]["stored"]),
     r"^gateway_principals\[1\]\.keys\[1\]: key id [0-9a-f]{12} is already a key of principal 'alice'"),
    (lambda r, p, k: p[1]["keys"].append(k["bob"]["stored"]), r"^gateway_principals\[1\]\.keys\[1\]: key id"),
    (lambda r, p, k: p[1]["keys"].append("dsk_0123456789ab_secret"), r"^gateway_principals\[1\]\.keys\[1\]: stored"),
    (lambda r, p, k: p[1]["keys"].append(bad_hash(2 ** 13)), r"^gateway_principals\[1\]\.keys\[1\]: .*weak"),
    (lambda r, p, k: p[1]["keys"].append(None), r"^gateway_principals\[1\]\.keys\[1\]: must be a stored"),
    (lambda r, p, k: p[1].__setitem__("revoked_keys", ["0123456789AB"]),
     r"^gateway_principals\[1\]\.revoked_keys\[0\]: '0123456789AB' is not"),
    (lambda r, p, k: p[1].__setitem__("revoked_keys", ["0123456789ab\n"]),
     r"^gateway_principals\[1\]\.revoked_keys\[0\]"),
    (lambda r, p, k: p[1].__setitem__("revoked_keys", ["0123456789a"]), r"^gateway_principals\[1\]\.revoked_keys\[0\]"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN=bob,O=Example", "CN=alice,O=Example"]),
     r"^gateway_principals\[1\]\.client_certificates\[1\]: subject 'CN=alice,O=Example' already belongs to "
     r"principal 'alice'$"),
    (lambda r, p, k: p[0]["client_certificates"].append("CN=alice,O=Example"),
     r"^gateway_principals\[0\]\.client_certificates\[2\]: subject .* already belongs to principal 'alice'"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN=bob,O=Example "]),
     r"^gateway_principals\[1\]\.client_certificates\[0\]: 'CN=bob,O=Example ' must be a certificate subject"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", [" CN=bob"]), r"^gateway_principals\[1\]\.client_cert"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN=bob\n"]), r"^gateway_principals\[1\]\.client_cert"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN=b\tob"]), r"^gateway_principals\[1\]\.client_cert"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN=b\x7fob"]), r"^gateway_principals\[1\]\.client_cert"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", [""]), r"^gateway_principals\[1\]\.client_cert"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN="]), r"^gateway_principals\[1\]\.client_cert"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN=caf\u00e9"]),
     r"^gateway_principals\[1\]\.client_certificates\[0\]: .*printable ASCII"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN=" + "b" * (MAX_SUBJECT - 2)]),
     r"^gateway_principals\[1\]\.client_certificates\[0\]"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["bob"]),
     r"^gateway_principals\[1\]\.client_certificates\[0\]: 'bob' .*RFC 2253"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["/O=Example/CN=bob"]),
     r"^gateway_principals\[1\]\.client_certificates\[0\]"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", ["CN = bob, O = Example"]),
     r"^gateway_principals\[1\]\.client_certificates\[0\]"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", [None]), r"^gateway_principals\[1\]\.client_cert"),
    (lambda r, p, k: p[1].__setitem__("client_certificates", "CN=bob,O=Example"),
     r"^gateway_principals\[1\]\.client_certificates: must be a list"),
    (lambda r, p, k: p[1].__setitem__("revoked_certificates", [31]),
     r"^gateway_principals\[1\]\.revoked_certificates\[0\]: 31 is not a certificate serial: a quoted hex"),
    (lambda r, p, k: p[1].__setitem__("revoked_certificates", ["1F", "0x1F"]),
     r"^gateway_principals\[1\]\.revoked_certificates\[1\]: '0x1F' is not"),
    (lambda r, p, k: p[1].__setitem__("revoked_certificates", ["F" * (MAX_SERIAL_DIGITS + 1)]),
     r"^gateway_principals\[1\]\.revoked_certificates\[0\]"),
    (lambda r, p, k: p[1].__setitem__("revoked_certificates", ["1F\n"]),
     r"^gateway_principals\[1\]\.revoked_certificates\[0\]"),
    (lambda r, p, k: p[1].__setitem__("revoked_certificates", "1F"),
     r"^gateway_principals\[1\]\.revoked_certificates: must be a list"),
    (lambda r, p, k: p[1].__setitem__("mtls_subject", "CN=bob"), r"^gateway_principals\[1\]: unknown field 'mtls_subject'"),
    (lambda r, p, k: p[1].__setitem__("limits", {"concurrency": 0}),
     r"^gateway_principals\[1\]\.limits\.concurrency: 0 must be an integer from 1"),
    (lambda r, p, k: p[1].__setitem__("limits", {"concurrency": LIMIT_MAX + 1}),
     r"^gateway_principals\[1\]\.limits\.concurrency"),
    (lambda r, p, k: p[1].__setitem__("limits", {"concurrency": True}),
     r"^gateway_principals\[1\]\.limits\.concurrency"),
    (lambda r, p, k: p[1].__setitem__("limits", {"concurrency": "2"}),
     r"^gateway_principals\[1\]\.limits\.concurrency"),
    (lambda r, p, k: p[1].__setitem__("limits", {"burst": 2}),
     r"^gateway_principals\[1\]\.limits: unknown field 'burst'"),
    (lambda r, p, k: p.append("eve"), r"^gateway_principals\[4\]: must be a mapping"),
])
def test_invalid_variables_are_refused_naming_the_path(keys, edit, message):
    r, p = roles(), principals(keys)
    edit(r, p, keys)
    with pytest.raises(GatewayPolicyError, match=message):
        compile_policy(r, p, None, MODELS)


@pytest.mark.parametrize("keys_var,models,defaults,message", [
    ({"mallory": []}, MODELS, None, r"^gateway_keys\.mallory: unknown principal 'mallory'"),
    ({"dave": "scrypt$"}, MODELS, None, r"^gateway_keys\.dave: must be a list"),
    ({"dave": ["alice"]}, MODELS, None, r"^gateway_keys\.dave\[0\]: stored"),
    ([], MODELS, None, r"^gateway_keys: must be a mapping"),
    (None, MODELS + ["deepseek-r1"], None, r"^models\[4\]: duplicate model 'deepseek-r1'"),
    (None, ["a//b"], None, r"^models\[0\]: 'a//b' is not a model name"),
    (None, ["a/../b"], None, r"^models\[0\]"),
    (None, ["-a"], None, r"^models\[0\]"),
    (None, ["deepseek-r1\n"], None, r"^models\[0\]"),
    (None, ["a/.b"], None, r"^models\[0\]"),
    (None, ["a/"], None, r"^models\[0\]"),
    (None, ["a" * (MODEL_MAX + 1)], None, r"^models\[0\]"),
    (None, "deepseek-r1", None, r"^models: must be a list"),
    (None, MODELS, {"concurrency": -1}, r"^gateway_default_limits\.concurrency: -1"),
    (None, MODELS, ["concurrency"], r"^gateway_default_limits: must be a mapping"),
])
def test_invalid_keys_models_and_defaults(keys, keys_var, models, defaults, message):
    with pytest.raises(GatewayPolicyError, match=message):
        compile_policy(roles(), principals(keys), keys_var, models, defaults)


def test_boundaries_that_are_accepted(keys):
    p = principals(keys)
    p[1]["limits"] = {"concurrency": 1, "tokens_per_minute": LIMIT_MAX}
    p[1]["client_certificates"] = ["CN=" + "b" * (MAX_SUBJECT - 3), "2.5.4.3=bob", "CN=bob\\, jr.,O=Caf\\C3\\A9"]
    p[1]["revoked_certificates"] = ["F" * MAX_SERIAL_DIGITS, "0", "1f", "00:1F"]
    p[3]["name"] = "d" * 64
    models = MODELS + ["a" * MODEL_MAX]
    r = roles()
    r["reader"]["resources"] = ["model/" + "a" * MODEL_MAX]
    compiled = compile_policy(r, p, None, models)
    assert compiled["principals"]["bob"]["limits"]["concurrency"] == 1
    assert sorted(compiled["certificates"].values()).count("bob") == 3
    assert compiled["revoked_certificates"] == ["0", "1F", "F" * MAX_SERIAL_DIGITS]
    assert compiled["principals"]["alice"]["allow"]["read"] == ["a" * MODEL_MAX]
    assert "d" * 64 in compiled["principals"]


def refusal(compile_call):
    """The whole message of the GatewayPolicyError that ``compile_call()`` raises."""
    with pytest.raises(GatewayPolicyError) as raised:
        compile_call()
    return str(raised.value)


def test_messages_name_the_rule_in_full():
    def one_role(resources=("model/*",), actions=("read",)):
        return {"x": {"resources": list(resources), "actions": list(actions)}}

    assert refusal(lambda: compile_policy(one_role(actions=["read", "write"]), [], None, MODELS)) == \
        "gateway_roles.x.actions[1]: unknown action 'write' (read, execute, admin)"
    assert refusal(lambda: compile_policy(one_role(resources=["model/deepseek-r?"]), [], None, MODELS)) == \
        "gateway_roles.x.resources[0]: 'model/deepseek-r?': only letters, digits, '_.:/-' and the '*' wildcard " \
        "may follow 'model/'"
    assert refusal(lambda: compile_policy(None, [], None, ["a//b"])) == \
        "models[0]: 'a//b' is not a model name (letters, digits, '_.:-', single '/' separators)"
    assert refusal(lambda: compile_policy(None, [{"name": "a", "roles": [], "client_certificates": ["bob"]}],
                                          None, MODELS)) == \
        "gateway_principals[0].client_certificates[0]: 'bob' must be a certificate subject as nginx's " \
        "$ssl_client_s_dn prints it (RFC 2253, most specific first, e.g. 'CN=analyst-app,O=onprem.deepseek'): " \
        "printable ASCII (nginx escapes other bytes as \\XX), no spaces at the ends"
    assert refusal(lambda: compile_policy(None, [{"name": "a", "roles": [], "revoked_certificates": ["1G"]}],
                                          None, MODELS)) == \
        "gateway_principals[0].revoked_certificates[0]: '1G' is not a certificate serial: a quoted hex string " \
        "of at most %d digits, ':' between octets allowed" % MAX_SERIAL_DIGITS


@pytest.mark.parametrize("compile_call,message", [
    (lambda: compile_policy([], [], None, MODELS), "gateway_roles: must be a mapping, got list"),
    (lambda: compile_policy({"x": {"resources": ["model/*"]}}, [], None, MODELS),
     "gateway_roles.x: missing field 'actions'"),
    (lambda: compile_policy({"x": {"actions": ["read"]}}, [], None, MODELS),
     "gateway_roles.x: missing field 'resources'"),
    (lambda: compile_policy(None, {"name": "a", "roles": []}, None, MODELS),
     "gateway_principals: must be a list, got dict"),
    (lambda: compile_policy(roles(), [{"name": "a", "roles": "reader"}], None, MODELS),
     "gateway_principals[0].roles: must be a list, got str"),
    (lambda: compile_policy(None, [{"name": "a", "roles": [], "keys": "scrypt$"}], None, MODELS),
     "gateway_principals[0].keys: must be a list, got str"),
    (lambda: compile_policy(None, [{"name": "a", "roles": [], "revoked_keys": "0123456789ab"}], None, MODELS),
     "gateway_principals[0].revoked_keys: must be a list, got str"),
    # YAML reads an unquoted number as an int: still named, not a TypeError from sorting.
    (lambda: compile_policy(None, [{"name": "a", "roles": []}], {"a": [], 7: []}, MODELS),
     "gateway_keys.7: unknown principal 7"),
    (lambda: compile_splits({"name": "x"}), "gateway_splits: must be a list, got dict"),
    # An unknown field next to one that is no string: named, sorted as text.
    (lambda: compile_policy({"x": {"resources": ["model/*"], "actions": ["read"], 1: "a", "zz": "b"}}, [], None,
                            MODELS),
     "gateway_roles.x: unknown field 1 (allowed: resources, actions)"),
    (lambda: compile_splits([dict(split(), name="r1 vs v3")]),
     "gateway_splits[0].name: 'r1 vs v3' must be 1-64 letters, digits, '_', '.' or '-', not starting with '_.-'"),
    (lambda: compile_splits([split(), dict(split(), name="second", variants=[{"name": "v 0", "weight": 1}])]),
     "gateway_splits[1].variants[0].name: 'v 0' must be 1-64 letters, digits, '_', '.' or '-', not starting with "
     "'_.-'"),
    (lambda: compile_splits([dict(split(), variants=[{"name": "v0", "weight": 1, "model": "deepseek-r1"}])]),
     "gateway_splits[0].variants[0]: unknown field 'model' (allowed: name, weight)"),
])
def test_variables_of_the_wrong_shape_are_named_in_full(compile_call, message):
    assert refusal(compile_call) == message


def test_no_roles_variable_means_no_grants():
    compiled = compile_policy(None, [{"name": "a", "roles": []}], None, MODELS)
    assert compiled["principals"]["a"]["allow"] == {"read": [], "execute": [], "admin": []}
    assert (compiled["version"], compiled["models"], compiled["unmatched"]) == (1, sorted(MODELS), [])


def test_grants_add_up_across_resources_and_roles():
    r = dict(roles(), both={"resources": ["model/deepseek-r1", "model/deepseek-coder*", "model/llama*"],
                            "actions": ["execute"]})
    ps = [{"name": "one-role", "roles": ["both"]}, {"name": "two-roles", "roles": ["r1-user", "coder"]}]
    compiled = compile_policy(r, ps, None, MODELS)
    for name in ("one-role", "two-roles"):
        assert compiled["principals"][name]["allow"]["execute"] == sorted(["deepseek-r1"] + CODERS), name
    assert compiled["principals"]["two-roles"]["allow"]["read"] == ["deepseek-r1"]
    assert compiled["unmatched"] == ["gateway_roles.both.resources[2]"]


def test_gateway_keys_belong_to_their_principal(keys):
    compiled = compile_policy(roles(), [{"name": "dave", "roles": ["r1-user"]}], {"dave": [keys["dave"]["stored"]]},
                              MODELS)
    assert compiled["keys"][keys["dave"]["id"]]["principal"] == "dave"
    assert decide(compiled, bearer(keys, "dave"), "GET", "/v1/models", b"") == (200, "dave", None)


# --- routing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,expected", [
    ("GET", "/v1/models", (200, "read")),
    ("POST", "/v1/chat/completions", (200, "execute")),
    ("POST", "/v1/completions", (200, "execute")),
    ("POST", "/v1/embeddings", (200, "execute")),
    ("GET", "/health", (200, "public")),
    ("POST", "/v1/models", (405, None)),
    ("GET", "/v1/chat/completions", (405, None)),
    ("get", "/v1/models", (405, None)),
    ("POST", "/health", (405, None)),
    ("GET", "/v1/models/", (404, None)),
    ("GET", "/V1/models", (404, None)),
    ("GET", "/", (404, None)),
    ("POST", "/v1/chat/completions/x", (404, None)),
    ("GET", "/v1//models", (200, "read")),
    ("GET", "//v1/./models", (200, "read")),
    ("GET", "/v1/x/../models", (200, "read")),
    ("GET", "/v1/models/.", (404, None)),
    ("GET", "/v1/%6dodels", (200, "read")),
    ("GET", "/v1/%2e%2e/v1/models", (200, "read")),
    ("GET", "/v1/models?limit=5", (200, "read")),
    ("GET", "/../v1/models", (400, None)),
    ("GET", "/v1/../../v1/models", (400, None)),
    ("GET", "/%2e%2e/v1/models", (400, None)),
    ("GET", "/v1%2fmodels", (400, None)),
    ("GET", "/v1%2Fmodels", (400, None)),
    ("GET", "/v1/%252e%252e/models", (400, None)),
    ("GET", "/v1/models%00", (400, None)),
    ("GET", "/v1/models%7f", (400, None)),
    ("GET", "/v1/mod%zzels", (400, None)),
    ("GET", "/v1/models%", (400, None)),
    ("GET", "/v1/%ff", (400, None)),
    ("GET", "/v1/%5cmodels", (400, None)),
    ("GET", "/v1\\models", (400, None)),
    ("GET", "/v1/mo dels", (400, None)),
    ("GET", "/v1/modèls", (400, None)),
    ("GET", "v1/models", (400, None)),
    ("GET", "/v1/models#x", (400, None)),
    ("GET", "", (400, None)),
    ("GET", None, (400, None)),
])
def test_route_action(method, path, expected):
    assert route_action(method, path) == expected


@pytest.mark.parametrize("path,expected", [
    # Printable ASCII from '!' to '~' is taken as it is; a space, DEL or anything above is refused.
    ("/v1/models!", (404, None)), ("/v1/models~", (404, None)),
    ("/v1/models\x7f", (400, None)), ("/v1/models\x80", (400, None)), ("/v1/mo\x1fdels", (400, None)),
    # Percent escapes decode to anything from a space up, except '/', '%' and DEL.
    ("/v1/mo%20dels", (404, None)), ("/v1/mo%1fdels", (400, None)), ("/v1/mo%7Edels", (404, None)),
    ("/v1/mo%7Fdels", (400, None)), ("/v1/%2e/models", (200, "read")),
])
def test_route_action_at_the_edges_of_printable_ascii(path, expected):
    assert route_action("GET", path) == expected


@pytest.mark.parametrize("path,carries", [
    ("/v1/models?api_key=", True),  # named, even when empty
    ("/v1/models?token", True),
    ("/v1/models?q=what?token", False),  # the query starts at the first '?': this 'token' is part of q's value
    ("/v1/models?q=token", False),
    ("/v1/models", False),
    (None, False),
    (b"/v1/models?api_key=x", False),
])
def test_query_carries_key(path, carries):
    assert query_carries_key(path) is carries


def test_a_header_that_is_no_text_proves_nobody(policy):
    for header in (42, ["Bearer", "x"], {"Bearer": "x"}):
        assert decide(policy, header, "GET", "/v1/models", b"") == (401, None, None)


def test_normalise_path_keeps_the_query_apart():
    assert normalise_path("/a//b/./c/../d/?x=%2F") == ("/a/b/d/", "x=%2F")
    assert normalise_path("/a/b/..") == ("/a/", "")


# --- decide -------------------------------------------------------------------------------------

def test_public_and_unknown_routes_need_no_key(policy):
    assert decide(policy, None, "GET", "/health", b"") == (200, None, None)
    assert decide(policy, None, "GET", "/admin", b"") == (404, None, None)
    assert decide(policy, None, "DELETE", "/v1/models", b"") == (405, None, None)
    assert decide(policy, None, "GET", "/../health", b"") == (400, None, None)


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "Bearer dsk_123_abc", "Bearer  {alice}", "{alice}",
    "Bearer {alice} ", "Bearer {alice}\n", "Bearer {unknown}", "Bearer {forged}", "Bearer {carol-old}",
])
def test_missing_malformed_unknown_forged_and_revoked_keys_are_401(policy, keys, header):
    if header:
        unknown, _hash = secrets.new_key("dsk")
        alice = keys["alice"]["key"]
        forged = alice[:-1] + ("A" if alice[-1] != "A" else "B")
        header = header.format(alice=alice, unknown=unknown, forged=forged,
                               **{"carol-old": keys["carol-old"]["key"]})
    assert decide(policy, header, "GET", "/v1/models", b"") == (401, None, None)


def test_scheme_is_case_insensitive_and_extra_keys_work(policy, keys):
    assert decide(policy, "bearer " + keys["carol"]["key"], "GET", "/v1/models", b"") == (200, "carol", None)
    assert decide(policy, bearer(keys, "dave"), "GET", "/v1/models", b"") == (403, "dave", None)


@pytest.mark.parametrize("query", ["?api_key={key}", "?KEY={key}", "?token=x", "?x={key}", "?{key}", "?x=%s"])
def test_keys_in_the_query_string_are_refused(policy, keys, query):
    key = keys["alice"]["key"]
    query = query.format(key=key).replace("%s", key.replace("_", "%5F"))
    assert decide(policy, bearer(keys, "alice"), "GET", "/v1/models" + query, b"") == (401, None, None)
    assert decide(policy, None, "GET", "/health" + query, b"") == (401, None, None)


def test_harmless_query_is_allowed(policy, keys):
    assert decide(policy, bearer(keys, "alice"), "GET", "/v1/models?limit=5", b"") == (200, "alice", None)


def test_revocation_holds_even_if_the_key_is_back_in_the_index(policy, keys):
    tampered = copy.deepcopy(policy)
    record = secrets.parse_hash(keys["carol-old"]["stored"])
    tampered["keys"][keys["carol-old"]["id"]] = dict(tampered["keys"][keys["carol"]["id"]],
                                                     salt=base64.b64encode(record["salt"]).decode(),
                                                     hash=base64.b64encode(record["hash"]).decode())
    assert decide(tampered, bearer(keys, "carol-old"), "GET", "/v1/models", b"") == (401, None, None)
    tampered["revoked"] = []
    assert decide(tampered, bearer(keys, "carol-old"), "GET", "/v1/models", b"") == (200, "carol", None)
    del tampered["principals"]["carol"]
    assert decide(tampered, bearer(keys, "carol-old"), "GET", "/v1/models", b"") == (401, None, None)


def test_model_listing_needs_at_least_one_readable_model(policy, keys):
    assert decide(policy, bearer(keys, "alice"), "GET", "/v1/models", b"") == (200, "alice", None)
    assert decide(policy, bearer(keys, "carol"), "GET", "/v1/models", b"") == (200, "carol", None)
    assert decide(policy, bearer(keys, "bob"), "GET", "/v1/models", b"") == (403, "bob", None)
    assert visible_models(policy, "alice") == sorted(MODELS)
    assert visible_models(policy, "carol") == ["deepseek-r1"]
    assert visible_models(policy, "bob") == []
    assert visible_models(policy, "nobody") == []


@pytest.mark.parametrize("name,path,model,status", [
    ("alice", CHAT, "deepseek-coder-v2", 200),
    ("alice", "/v1/completions", "deepseek-coder-lite", 200),
    ("alice", "/v1/embeddings", "deepseek-r1", 403),
    ("bob", CHAT, "deepseek-coder-lite", 200),
    ("bob", CHAT, "deepseek-r1", 403),
    ("carol", CHAT, "deepseek-r1", 200),
    ("carol", CHAT, "deepseek-coder-v2", 403),
    ("carol", CHAT, "unknown-model", 403),
    ("dave", CHAT, "deepseek-r1", 403),
])
def test_execute_is_allowed_only_for_granted_models(policy, keys, name, path, model, status):
    assert decide(policy, bearer(keys, name), "POST", path, body(model, messages=[])) == (status, name, model)


@pytest.mark.parametrize("payload", [
    None, "", b"", b"not json", b"[]", b'"deepseek-r1"', b"{}", b'{"model": 1}', b'{"model": ""}',
    b'{"model": null}', b'{"model": ["deepseek-coder-v2"]}',
    b'{"model": "deepseek-r1", "model": "deepseek-coder-v2"}',
    b'{"model": "deepseek-coder-v2", "temperature": NaN}',
    b'{"model": "deepseek-coder-v2", "x": "\xff"}',
    '{"model": "deepseek-coder-v2"}'.encode("utf-16"),
    b'\xef\xbb\xbf{"model": "deepseek-coder-v2"}',
])
def test_execute_needs_a_json_object_naming_one_model(policy, keys, payload):
    assert decide(policy, bearer(keys, "bob"), "POST", CHAT, payload) == (400, "bob", None)


def test_bytearray_body_is_read(policy, keys):
    assert decide(policy, bearer(keys, "bob"), "POST", CHAT, bytearray(body("deepseek-coder-v2"))) == \
        (200, "bob", "deepseek-coder-v2")


# --- decide with client certificates --------------------------------------------------------------

def cert(subject, serial="1002", verify="SUCCESS"):
    """A client certificate as nginx reports it ($ssl_client_verify, $ssl_client_s_dn, $ssl_client_serial)."""
    return {"verify": verify, "subject": subject, "serial": serial}


ALICE, CAROL = cert("CN=alice,O=Example"), cert("CN=carol,O=Example")


@pytest.mark.parametrize("certificate,method,path,payload,expected", [
    (ALICE, "GET", "/v1/models", b"", (200, "alice", None)),
    (cert("CN=alice-laptop,O=Example"), "GET", "/v1/models", b"", (200, "alice", None)),
    (ALICE, "POST", CHAT, body("deepseek-coder-v2"), (200, "alice", "deepseek-coder-v2")),
    (ALICE, "POST", CHAT, body("deepseek-r1"), (403, "alice", "deepseek-r1")),
    (ALICE, "POST", CHAT, b"{}", (400, "alice", None)),
    (CAROL, "POST", CHAT, body("deepseek-r1"), (200, "carol", "deepseek-r1")),
    (ALICE, "GET", "/health", b"", (200, None, None)),
    (ALICE, "GET", "/v1/models?api_key=x", b"", (401, None, None)),
    (ALICE, "GET", "/nope", b"", (404, None, None)),
    # Exact subjects only: another order, case or spacing is another certificate.
    (cert("O=Example,CN=alice"), "GET", "/v1/models", b"", (401, None, None)),
    (cert("cn=alice,o=Example"), "GET", "/v1/models", b"", (401, None, None)),
    (cert("CN=alice, O=Example"), "GET", "/v1/models", b"", (401, None, None)),
    (cert("CN=mallory,O=Example"), "GET", "/v1/models", b"", (401, None, None)),
    (cert(None), "GET", "/v1/models", b"", (401, None, None)),
    # The revoked serial (listed as 00:1f), in the forms nginx may print it, whatever the subject.
    (cert("CN=carol,O=Example", "1F"), "GET", "/v1/models", b"", (401, None, None)),
    (cert("CN=carol,O=Example", "001F"), "GET", "/v1/models", b"", (401, None, None)),
    (cert("CN=alice,O=Example", "1F"), "GET", "/v1/models", b"", (401, None, None)),
    (cert("CN=carol,O=Example", "1F0"), "GET", "/v1/models", b"", (200, "carol", None)),
    (cert("CN=carol,O=Example", "F1"), "GET", "/v1/models", b"", (200, "carol", None)),
    # Not verified: none offered is anonymous; one that failed is refused before any route.
    (cert("CN=alice,O=Example", verify="NONE"), "GET", "/v1/models", b"", (401, None, None)),
    (cert("CN=alice,O=Example", verify="FAILED:certificate has expired"), "GET", "/v1/models", b"", (400, None, None)),
    (cert("CN=alice,O=Example", verify="FAILED:x"), "GET", "/health", b"", (400, None, None)),
    (cert("CN=alice,O=Example", verify="FAILED:x"), "GET", "/nope", b"", (400, None, None)),
    (cert("CN=alice,O=Example", verify="success"), "GET", "/v1/models", b"", (400, None, None)),
    (cert("CN=alice,O=Example", verify=""), "GET", "/v1/models", b"", (400, None, None)),
    (None, "GET", "/v1/models", b"", (401, None, None)),
])
def test_a_verified_certificate_is_its_principal(policy, certificate, method, path, payload, expected):
    assert decide(policy, None, method, path, payload, certificate=certificate) == expected


def test_a_key_takes_precedence_over_a_certificate(policy, keys):
    assert decide(policy, bearer(keys, "bob"), "GET", "/v1/models", b"", certificate=ALICE) == (403, "bob", None)
    assert decide(policy, bearer(keys, "carol"), "GET", "/v1/models", b"", ALICE) == (200, "carol", None)
    # A key that fails is not replaced by the certificate.
    for header in ("", "Bearer", "Basic YWxpY2U6cHc=", bearer(keys, "carol-old")):
        assert decide(policy, header, "GET", "/v1/models", b"", certificate=ALICE) == (401, None, None)
    # A certificate that failed verification is refused even with a good key.
    failed = cert("CN=alice,O=Example", verify="FAILED:x")
    assert decide(policy, bearer(keys, "alice"), "GET", "/v1/models", b"", certificate=failed) == (400, None, None)


def test_authenticate_certificate_reports_revocation(policy):
    assert authenticate_certificate(policy, ALICE) == ("alice", False)
    assert authenticate_certificate(policy, cert("CN=nobody,O=Example", "001f")) == (None, True)
    assert authenticate_certificate(policy, cert("CN=nobody,O=Example")) == (None, False)
    assert authenticate_certificate(policy, cert("CN=alice,O=Example", verify="NONE")) == (None, False)
    assert authenticate_certificate(policy, None) == (None, False)
    assert authenticate_certificate(policy, "CN=alice,O=Example") == (None, False)


def test_a_certificate_of_a_removed_principal_is_refused(policy):
    tampered = copy.deepcopy(policy)
    del tampered["principals"]["alice"]
    assert decide(tampered, None, "GET", "/v1/models", b"", certificate=ALICE) == (401, None, None)
    assert decide(policy, None, "GET", "/v1/models", b"", certificate=ALICE) == (200, "alice", None)


def test_a_policy_without_certificate_fields_still_decides(policy, keys):
    """A table compiled before certificates existed: keys work, certificates prove nobody."""
    older = {k: v for k, v in policy.items() if k not in ("certificates", "revoked_certificates")}
    assert decide(older, None, "GET", "/v1/models", b"", certificate=ALICE) == (401, None, None)
    assert decide(older, bearer(keys, "alice"), "GET", "/v1/models", b"") == (200, "alice", None)


# --- A/B splits ---------------------------------------------------------------------------------

def split(weights=(70, 20, 10), salt="s1", name="r1-vs-v3"):
    return {"name": name, "salt": salt,
            "variants": [{"name": "v%d" % i, "weight": w} for i, w in enumerate(weights)]}


def test_assignment_is_sticky_and_follows_the_documented_hash():
    s = split()
    for i in range(200):
        principal = "user-%d" % i
        first = split_assign(principal, s)
        assert split_assign(principal, copy.deepcopy(s)) == first
        bucket = int.from_bytes(hashlib.sha256(("s1" + principal).encode()).digest()[:4], "big") % 100
        assert first == ("v0" if bucket < 70 else "v1" if bucket < 90 else "v2")


def test_salt_reshuffles_assignments():
    a = [split_assign("user-%d" % i, split(salt="a")) for i in range(500)]
    b = [split_assign("user-%d" % i, split(salt="b")) for i in range(500)]
    assert a != b


@pytest.mark.parametrize("weights", [(70, 20, 10), (1, 1), (0, 3, 1), (MAX_WEIGHT, 1)])
def test_proportions_follow_the_weights(weights):
    counts = {}
    total = 10000
    for i in range(total):
        variant = split_assign("principal-%05d" % i, split(weights))
        counts[variant] = counts.get(variant, 0) + 1
    for i, weight in enumerate(weights):
        share = counts.get("v%d" % i, 0) / total
        assert abs(share - weight / sum(weights)) < 0.02, (weights, counts)
        if weight == 0:
            assert "v%d" % i not in counts


@pytest.mark.parametrize("edit,message", [
    (lambda s: s["variants"].__setitem__(0, {"name": "v0", "weight": -1}),
     r"^gateway_splits\[1\]\.variants\[0\]\.weight: -1 must be"),
    (lambda s: s["variants"].__setitem__(0, {"name": "v0", "weight": MAX_WEIGHT + 1}),
     r"^gateway_splits\[1\]\.variants\[0\]\.weight"),
    (lambda s: s["variants"].__setitem__(0, {"name": "v0", "weight": True}),
     r"^gateway_splits\[1\]\.variants\[0\]\.weight"),
    (lambda s: s["variants"].__setitem__(0, {"name": "v0", "weight": 1.5}),
     r"^gateway_splits\[1\]\.variants\[0\]\.weight"),
    (lambda s: s.__setitem__("variants", [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]),
     r"^gateway_splits\[1\]\.variants: weights add up to 0"),
    (lambda s: s.__setitem__("variants", []), r"^gateway_splits\[1\]\.variants: must not be empty"),
    (lambda s: s["variants"][1].__setitem__("name", "v0"),
     r"^gateway_splits\[1\]\.variants\[1\]\.name: duplicate variant 'v0'"),
    (lambda s: s["variants"][1].pop("weight"), r"^gateway_splits\[1\]\.variants\[1\]: missing field 'weight'"),
    (lambda s: s.__setitem__("salt", ""), r"^gateway_splits\[1\]\.salt: must be a non-empty string"),
    (lambda s: s.pop("salt"), r"^gateway_splits\[1\]: missing field 'salt'"),
    (lambda s: s.__setitem__("seed", 1), r"^gateway_splits\[1\]: unknown field 'seed'"),
    (lambda s: s.__setitem__("name", "other"), r"^gateway_splits\[1\]\.name: duplicate split 'other'"),
])
def test_invalid_splits_are_refused_naming_the_path(edit, message):
    second = split(name="second")
    edit(second)
    with pytest.raises(GatewayPolicyError, match=message):
        compile_splits([split(name="other"), second])


def test_weight_boundaries_that_are_accepted():
    compile_splits([split((0, MAX_WEIGHT)), split((1,), name="one")])
    assert split_assign("anyone", split((0, 1))) == "v1"
    with pytest.raises(GatewayPolicyError, match=r"^gateway_split: principal must be"):
        split_assign("", split())
    with pytest.raises(GatewayPolicyError, match=r"^gateway_splits\[0\]\.variants"):
        split_assign("x", split((0,)), where="gateway_splits[0]")
