"""The harness resolves collection imports to this source tree."""
from pathlib import Path


def test_collection_package_resolves_to_source_tree():
    from ansible_collections.onprem.deepseek import plugins

    here = Path(__file__).resolve().parents[4]
    assert Path(list(plugins.__path__)[0]).resolve() == (here / "plugins").resolve()
