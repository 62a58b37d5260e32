"""Waiting for a host to boot: a failed wait says why, with the end of the host's logs
(a failed `up` removes the host's directory, so the message is all that is left)."""
import os
import subprocess
import sys
from ipaddress import ip_address
from types import SimpleNamespace

import pytest

from onprem_sandbox import hosts, run


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_exit_during_boot_carries_the_log_tails(tmp_path):
    console = tmp_path / "console.log"
    console.write_text("".join(f"line {i}\n" for i in range(40)) + "Kernel panic - not syncing\n")
    host = SimpleNamespace(name="g1", address=ip_address("127.0.0.1"))
    with pytest.raises(run.CommandError) as err:
        hosts.wait_ssh(host, _dead_pid(), timeout=5, logs=[tmp_path / "absent.out", console])
    text = str(err.value)
    assert text.startswith("host g1: exited during boot\n")
    assert f"--- last lines of {console}:" in text
    assert "Kernel panic - not syncing" in text
    assert "line 26" in text and "line 25" not in text  # the last 15 lines
    assert "absent.out" not in text


def test_timeout_carries_the_log_tails(tmp_path, monkeypatch):
    console = tmp_path / "qemu.out"
    console.write_text("qemu: could not open /dev/net/tun\n")
    monkeypatch.setattr(hosts, "ssh_ready", lambda address: False)
    host = SimpleNamespace(name="g2", address=ip_address("127.0.0.1"))
    with pytest.raises(run.CommandError) as err:
        hosts.wait_ssh(host, os.getpid(), timeout=0.2, logs=[console])
    text = str(err.value)
    assert text.startswith("timed out after 0s waiting for SSH on g2 (127.0.0.1)")
    assert "could not open /dev/net/tun" in text


def test_ready_host_returns(monkeypatch):
    monkeypatch.setattr(hosts, "ssh_ready", lambda address: True)
    host = SimpleNamespace(name="g3", address=ip_address("127.0.0.1"))
    hosts.wait_ssh(host, os.getpid(), timeout=1, logs=[])
