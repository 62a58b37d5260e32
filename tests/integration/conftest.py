import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


@pytest.fixture(scope="session")
def root():
    return ROOT


def run(cmd, check=True, env=None, timeout=600, **kw):
    """Run a command with the toolchain's bin first on PATH; return the CompletedProcess."""
    full_env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", **(env or {})}
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=full_env, check=False,
                          timeout=timeout, cwd=kw.pop("cwd", ROOT), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def requires_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: namespaces and containers")
    for tool in ("systemd-nspawn", "debootstrap", "ip"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} missing: run tools/bootstrap")
