"""Make this source tree importable as ``ansible_collections.onprem.deepseek``.

Unit tests import the collection's plugins by their real names, exactly as Ansible does,
without needing the collection installed.
"""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _remove_tree(tree, owner_pid):
    # Forked workers (mutmut runs each mutant in one) inherit this handler; only the process
    # that made the tree removes it.
    if os.getpid() == owner_pid:
        shutil.rmtree(tree, ignore_errors=True)


if ROOT.parts[-3:] == ("ansible_collections", "onprem", "deepseek"):
    # An installed collection, or a checkout laid out like one: already importable from above.
    sys.path.insert(0, str(ROOT.parents[2]))
else:
    _tree = Path(tempfile.mkdtemp(prefix="onprem-deepseek-units-"))
    (_tree / "ansible_collections" / "onprem").mkdir(parents=True)
    (_tree / "ansible_collections" / "onprem" / "deepseek").symlink_to(ROOT)
    sys.path.insert(0, str(_tree))
    atexit.register(_remove_tree, _tree, os.getpid())
