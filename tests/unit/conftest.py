"""Make this source tree importable as ``ansible_collections.onprem.deepseek``.

Unit tests import the collection's plugins by their real names, exactly as Ansible does,
without needing the collection installed.
"""
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

_tree = Path(tempfile.mkdtemp(prefix="onprem-deepseek-units-"))
(_tree / "ansible_collections" / "onprem").mkdir(parents=True)
(_tree / "ansible_collections" / "onprem" / "deepseek").symlink_to(ROOT)
sys.path.insert(0, str(_tree))
