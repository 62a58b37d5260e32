"""Make this source tree importable as ``ansible_collections.onprem.deepseek`` (as tests/unit does)."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

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
