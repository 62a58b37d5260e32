"""docs/planner.md's table is what the planner outputs today."""
import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[4] / "docs" / "planner.md"


def test_doc_table_matches_the_code():
    text = DOC.read_text(encoding="utf-8")
    snippet = re.search(r"<!-- table:snippet -->\n```python\n(.*?)```", text, re.S).group(1)
    table = re.search(r"<!-- table:begin -->\n(.*?)<!-- table:end -->", text, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, str(DOC), "exec"), {"__name__": "planner_doc"})
    assert out.getvalue() == table
    # The rows the recipes pin down.
    assert "| deepseek-r1 | fp8 | no | no | no | no | TP8 PP2 DP1 | TP8 PP1 DP1 |" in table
    assert "| deepseek-r1 | awq | no | no | TP8 PP1 DP1 |" in table
