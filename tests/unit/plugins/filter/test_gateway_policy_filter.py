"""The gateway_policy filter: key names resolved from stored hashes, errors as AnsibleFilterError."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter import gateway_policy as plugin
from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets as secrets

MODELS = ["deepseek-r1", "deepseek-coder"]
ROLES = {"user": {"resources": ["model/deepseek-r1"], "actions": ["read", "execute"]}}
SPLIT = {"name": "chat", "salt": "s1", "variants": [{"name": "a", "weight": 1}]}


@pytest.fixture(scope="module")
def key():
    made, key_id = secrets.new_key("dsk")
    return {"key": made, "id": key_id, "stored": secrets.hash_key(made)}


def test_filter_is_registered():
    assert plugin.FilterModule().filters()["gateway_policy"] is plugin.gateway_policy


def test_key_names_and_stored_hashes_both_work(key):
    other, other_id = secrets.new_key("dsk")
    policy = plugin.gateway_policy(
        ROLES, principals=[{"name": "alice", "roles": ["user"], "keys": ["alice"]},
                           {"name": "bob", "roles": ["user"], "keys": [secrets.hash_key(other)]}],
        models=MODELS, stored_hashes={"alice": key["stored"] + "\n"}, splits=[SPLIT])
    assert policy["keys"][key["id"]]["principal"] == "alice"
    assert policy["keys"][other_id]["principal"] == "bob"
    assert policy["principals"]["alice"]["allow"]["execute"] == ["deepseek-r1"]
    assert key["key"] not in str(policy)


def test_client_certificates_pass_through():
    principal = {"name": "a", "roles": ["user"], "client_certificates": ["CN=a-app,O=onprem.deepseek"],
                 "revoked_certificates": ["0a:1B"]}
    policy = plugin.gateway_policy(ROLES, principals=[principal], models=MODELS)
    assert policy["certificates"] == {"CN=a-app,O=onprem.deepseek": "a"}
    assert policy["revoked_certificates"] == ["A1B"]


def test_defaults_fill_limits(key):
    policy = plugin.gateway_policy(ROLES, principals=[{"name": "a", "roles": ["user"]}], models=MODELS,
                                   defaults={"requests_per_second": 3})
    assert policy["principals"]["a"]["limits"]["requests_per_second"] == 3


@pytest.mark.parametrize("principals, kwargs, message", [
    ([{"name": "a", "roles": ["nope"]}], {}, "gateway_principals[0].roles[0]: unknown role 'nope'"),
    ([{"name": "a", "roles": [], "keys": ["missing"]}], {},
     "gateway_principals[0].keys[0]: no API key named 'missing'"),
    ([{"name": "a", "roles": []}], {"models": ["bad//name"]}, "gateway_models[0]:"),
    ([{"name": "a", "roles": []}], {"defaults": {"concurrency": 0}}, "gateway_default_limits.concurrency:"),
    ([{"name": "a", "roles": []}], {"splits": [dict(SPLIT, variants=[{"name": "a", "weight": 0}])]},
     "gateway_splits[0].variants: weights add up to 0"),
    ([{"name": "a", "roles": [], "revoked_keys": ["xyz"]}], {}, "gateway_principals[0].revoked_keys[0]:"),
    ([{"name": "a", "roles": []}, {"name": "b", "roles": [], "client_certificates": ["CN=b", "b"]}], {},
     "gateway_principals[1].client_certificates[1]: 'b' must be a certificate subject"),
    ([{"name": "a", "roles": [], "revoked_certificates": [10]}], {},
     "gateway_principals[0].revoked_certificates[0]: 10 is not a certificate serial"),
])
def test_errors_name_the_variable(principals, kwargs, message):
    kwargs.setdefault("models", MODELS)
    with pytest.raises(AnsibleFilterError) as err:
        plugin.gateway_policy(ROLES, principals=principals, **kwargs)
    assert str(err.value).startswith("gateway_policy: " + message)


def test_principals_and_models_are_required():
    with pytest.raises(AnsibleFilterError, match="principals and models are required"):
        plugin.gateway_policy(ROLES)


def test_revoked_key_names_become_key_ids(key):
    policy = plugin.gateway_policy(ROLES, principals=[{"name": "a", "roles": ["user"], "keys": ["old"],
                                                      "revoked_keys": ["old"]}],
                                   models=MODELS, stored_hashes={"old": key["stored"]})
    assert policy["revoked"] == [key["id"]]
    assert policy["keys"] == {}


def test_pending_keys_are_left_out_until_stored(key):
    spec = [{"name": "a", "roles": ["user"], "keys": ["new"], "revoked_keys": ["new"]}]
    early = plugin.gateway_policy(ROLES, principals=spec, models=MODELS, pending=["new"])
    assert (early["keys"], early["revoked"]) == ({}, [])
    late = plugin.gateway_policy(ROLES, principals=spec, models=MODELS, pending=["new"],
                                 stored_hashes={"new": key["stored"]})
    assert late["revoked"] == [key["id"]]
    with pytest.raises(AnsibleFilterError, match=r"gateway_principals\[0\].keys\[0\]: no API key named 'new'"):
        plugin.gateway_policy(ROLES, principals=spec, models=MODELS)


def test_a_revoked_name_whose_hash_is_bad_names_the_entry():
    with pytest.raises(AnsibleFilterError, match=r"gateway_principals\[0\].revoked_keys\[0\]"):
        plugin.gateway_policy(ROLES, principals=[{"name": "a", "roles": [], "revoked_keys": ["x"]}],
                              models=MODELS, stored_hashes={"x": "not a hash"})
