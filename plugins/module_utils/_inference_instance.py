# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""One inference instance as systemd runs it: what its process was started from, and its readiness.

Behind the ``onprem.deepseek.inference_instance`` module. The role decides restarts from what
this reads on the host (not only from what its own run changed), so a run interrupted between
rewriting the files and restarting is finished by the next one:

- ``started_from``: the value of a variable in the environment the unit's main process was
  started with (``/proc/<MainPID>/environ``). The role puts a fingerprint of the instance's
  unit, configuration and key there (``EnvironmentFile=``), so the running process says which
  files it runs.
- ``wait_ready``: polls ``/health`` until it answers 200, and stops early when the unit's main
  process exits or is replaced during start-up (a failed start that systemd would otherwise keep
  restarting until the timeout).
"""

from __future__ import annotations

import subprocess
import time
import urllib.request

PROPERTIES = ("LoadState", "ActiveState", "SubState", "MainPID", "NeedDaemonReload")


def unit_properties(unit, run=subprocess.run):
    """``systemctl show`` of the properties above, as a dict of strings."""
    out = run(["systemctl", "show", "--property=" + ",".join(PROPERTIES), unit],
              capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def environ_value(raw, variable):
    """The value of ``variable`` in a NUL-separated environment block (bytes), or None."""
    prefix = variable.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode("utf-8", "replace")
    return None


def read_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as handle:
        return handle.read()


def started_from(props, variable, read=read_environ):
    """What the unit's running main process was started with, or None when it does not run."""
    pid = int(props.get("MainPID") or 0)
    if pid <= 0 or props.get("ActiveState") not in ("active", "reloading", "activating"):
        return None
    try:
        return environ_value(read(pid), variable)
    except (IOError, OSError):
        return None


def file_value(text, variable):
    """The value of ``variable`` in an environment file's text (``NAME=value`` lines), or None."""
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name == variable:
            return value.strip().strip('"')
    return None


def outdated(running, deployed):
    """Whether a running process was started from something else than what is deployed.

    ``running`` is None when nothing runs (a start, not a restart, brings the deployed files in).
    """
    return running is not None and running != deployed


def http_status(url, timeout=5, opener=None):
    """Status of a GET on ``url`` without proxies (raises on connection errors)."""
    opener = opener or urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.status


def wait_ready(unit, url, timeout, props=unit_properties, status=http_status, clock=time.monotonic,
               sleep=time.sleep, interval=2.0):
    """Poll ``url`` until it answers 200 while the unit keeps the main process it had at the start.

    Returns ``health`` (last status, 0 for no answer), ``pid``, ``state``, ``sub``, ``ready``,
    ``seconds``, and ``reason`` / ``last_error`` when it is not ready.
    """
    deadline = clock() + float(timeout)
    first = props(unit)
    # state and sub are read on every round, the first one included.
    result = {"health": 0, "pid": first.get("MainPID")}
    started = clock()
    while True:
        now = props(unit)
        result.update(state=now.get("ActiveState"), sub=now.get("SubState"))
        if (now.get("ActiveState") != "active" or now.get("MainPID") != first.get("MainPID")
                or first.get("MainPID") in (None, "0")):
            result["reason"] = "the unit left its start (%s/%s, MainPID %s -> %s)" % (
                now.get("ActiveState"), now.get("SubState"), first.get("MainPID"), now.get("MainPID"))
            break
        try:
            result["health"] = status(url)
        except Exception as exc:  # pylint: disable=broad-except
            result["health"], result["last_error"] = 0, str(exc)[:200]
        if result["health"] == 200:
            break
        if clock() > deadline:
            result["reason"] = "no /health 200 within %s s" % timeout
            break
        sleep(interval)
    result["seconds"] = round(clock() - started, 1)
    result["ready"] = result["health"] == 200
    return result
