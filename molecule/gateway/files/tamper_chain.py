"""Tamper with copies of the gateway's audit chain and ask onprem-deepseek-audit verify about each
(run on the gateway host). Prints one JSON document: per case, verify's exit status and output.

Cases: the intact chain; a record edited; a record deleted; two records swapped; the newest file
cut short (found only with the saved head).
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHAIN, STATE, KEY = (Path(a) for a in sys.argv[1:4])
VERIFY = ["/usr/local/bin/onprem-deepseek-audit", "verify", "--public-key", str(KEY), "--head", str(STATE)]


def case(change):
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "chain"
        shutil.copytree(CHAIN, copy)
        target = sorted(copy.glob("audit.log.*"), key=lambda p: int(p.suffix[1:]))[-1] if change != "truncated" \
            else copy / "audit.log"
        lines = target.read_text().splitlines(keepends=True)
        idx = [i for i, line in enumerate(lines) if '"prev":' in line]
        mid = idx[len(idx) // 2]
        if change == "edited":
            lines[mid] = lines[mid].replace('"status":', '"status":1', 1)
        elif change == "deleted":
            del lines[mid]
        elif change == "reordered":
            nxt = idx[idx.index(mid) + 1]
            lines[mid], lines[nxt] = lines[nxt], lines[mid]
        elif change == "truncated":
            lines = lines[: idx[len(idx) // 2]]
        target.write_text("".join(lines))
        run = subprocess.run(VERIFY + [str(copy)], capture_output=True, text=True, timeout=120, check=False)
        out = (run.stdout + run.stderr).replace(str(copy) + "/", "")
        return {"rc": run.returncode, "output": out.strip(), "file": target.name, "line": mid + 1}


print(json.dumps({c: case(c) for c in ("intact", "edited", "deleted", "reordered", "truncated")}))
