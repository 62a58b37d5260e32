"""Every filter plugin's documentation parses (ansible-doc and the changelog generator read it)."""
import ast
from pathlib import Path

import pytest
import yaml

FILTERS = sorted((Path(__file__).resolve().parents[4] / "plugins" / "filter").glob("*.py"))


def doc_blocks(path):
    blocks = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
            blocks[node.targets[0].id] = node.value.value
    return blocks


@pytest.mark.parametrize("path", FILTERS, ids=[p.stem for p in FILTERS])
def test_filter_documentation_parses_and_names_the_filter(path):
    blocks = doc_blocks(path)
    assert set(blocks) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    doc = yaml.safe_load(blocks["DOCUMENTATION"])
    assert doc["name"] == path.stem
    assert isinstance(doc["description"], list) and all(isinstance(d, str) for d in doc["description"])
    assert isinstance(yaml.safe_load(blocks["EXAMPLES"]), list)
    assert "_value" in yaml.safe_load(blocks["RETURN"])
