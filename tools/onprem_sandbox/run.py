"""Running commands and tracking the processes the sandbox starts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

VERBOSE = os.environ.get("SANDBOX_VERBOSE") == "1"


class CommandError(RuntimeError):
    pass


def log(msg):
    print(f"sandbox: {msg}", file=sys.stderr, flush=True)


def sh(*cmd, check=True, capture=False, input=None):
    """Run a command; on failure raise CommandError with its output."""
    if VERBOSE:
        log("+ " + " ".join(map(str, cmd)))
    proc = subprocess.run(
        [str(c) for c in cmd], check=False, text=True, input=input,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if check and proc.returncode != 0:
        raise CommandError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout if capture else proc


def spawn(cmd, logfile, cwd=None):
    """Start a long-running process in its own session; returns its pid."""
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            [str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=cwd,
        )
    return proc.pid


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def stop(pids, sig=signal.SIGTERM, timeout=30.0):
    """Ask processes to stop, all at once, then kill (with their sessions) whatever is left
    after `timeout` seconds."""
    pids = [p for p in pids if alive(p)]
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in pids:
            _reap(pid)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return
        time.sleep(0.2)
    for pid in pids:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for _ in range(50):
        for pid in pids:
            _reap(pid)
        if not any(alive(p) for p in pids):
            return
        time.sleep(0.1)


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_for(predicate, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise CommandError(f"timed out after {timeout:.0f}s waiting for {what}")
