"""Make this source tree importable as ``ansible_collections.onprem.deepseek`` (as tests/unit does),
and the fixtures of the small one-principal gateways (syslog, payloads)."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _remove_tree(tree, owner_pid):
    if os.getpid() == owner_pid:
        shutil.rmtree(tree, ignore_errors=True)


if ROOT.parts[-3:] == ("ansible_collections", "onprem", "deepseek"):
    sys.path.insert(0, str(ROOT.parents[2]))
else:
    _tree = Path(tempfile.mkdtemp(prefix="onprem-deepseek-gateway-"))
    (_tree / "ansible_collections" / "onprem").mkdir(parents=True)
    (_tree / "ansible_collections" / "onprem" / "deepseek").symlink_to(ROOT)
    sys.path.insert(0, str(_tree))
    atexit.register(_remove_tree, _tree, os.getpid())


@pytest.fixture(scope="module")
def admin_only():
    """``(key, policy)``: one principal, admin, that may read and execute harness.ONE_MODEL."""
    import gateway_harness as harness
    from ansible_collections.onprem.deepseek.plugins.module_utils import _gateway_policy as gp
    from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets as secrets

    key, _key_id = secrets.new_key("dsk")
    roles = {"operator": {"resources": ["model/*"], "actions": ["read", "execute"]}}
    principals = [{"name": "admin", "roles": ["operator"], "keys": [secrets.hash_key(key)]}]
    return key, gp.compile_policy(roles, principals, {}, harness.ONE_MODEL)


@pytest.fixture(scope="module")
def answering_engines():
    """Two stand-in engines serving harness.ONE_MODEL whose streams answer at once."""
    import gateway_harness as harness

    pair = [harness.Engine("a", harness.ONE_MODEL), harness.Engine("b", harness.ONE_MODEL)]
    for engine in pair:
        engine.release.set()
    yield pair
    for engine in pair:
        engine.stop()
