# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""API keys that outlive an AWX job: the pki role's key tasks driven through ansible_runner.run,
each job in a private data directory of its own laid out as AWX lays it out (env/extravars,
env/envvars, inventory/, project/), which is thrown away after the job as AWX throws away its
container.

The keys go to pki_api_key_output_host (here "keeper", a host of the inventory), not to the job's
own disk: a later job in a fresh directory finds them there and makes none. The hosts (two gateways
sharing one key) and the keeper are local connections on this machine, each with its own
directory.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml

ansible_runner = pytest.importorskip("ansible_runner", reason="ansible-runner is in requirements/dev.txt")

ROOT = Path(__file__).resolve().parents[2]
# The key format's own code (standard library only), to check the stored hashes.
_SPEC = importlib.util.spec_from_file_location("pki_secrets", ROOT / "plugins" / "module_utils" / "_pki_secrets.py")
_pki_secrets = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_pki_secrets)
GENERATE = "Generate missing API keys on pki_api_key_output_host (shown once, in a 0600 file)"

PLAYBOOK = """---
- name: The pki role's input checks and API keys, as a job template runs them
  hosts: gateways
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Check the inputs
      ansible.builtin.include_role:
        name: onprem.deepseek.pki
        tasks_from: preflight.yml
    - name: Make or read each key
      ansible.builtin.include_role:
        name: onprem.deepseek.pki
        tasks_from: api_keys.yml
"""


def job(base, name, extravars):
    """A private data directory as AWX writes it for one job."""
    data = base / name
    (data / "env").mkdir(parents=True)
    (data / "inventory").mkdir()
    (data / "project").mkdir()
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"children": {
        "gateways": {"hosts": {gw: dict(local, pki_api_key_dir=str(base / gw / "api-keys")) for gw in ("gw-a", "gw-b")}},
        "keepers": {"hosts": {"keeper": local}}}}}
    (data / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (data / "project" / "keys.yml").write_text(PLAYBOOK)
    (data / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    (data / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"), "ANSIBLE_NOCOLOR": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}))
    return data


def run(data):
    result = ansible_runner.run(private_data_dir=str(data), playbook="keys.yml", quiet=True)
    events = list(result.events)
    return result, events


def task_results(events, task):
    """Each host's result of each loop item of the task."""
    return [e["event_data"] for e in events
            if e.get("event") in ("runner_item_on_ok", "runner_item_on_failed") and e["event_data"].get("task", "").endswith(task)]


@pytest.fixture
def base(tmp_path):
    for host in ("gw-a", "gw-b"):
        (tmp_path / host / "api-keys").mkdir(parents=True)
    return tmp_path


def extravars(base):
    return {"pki_enabled": True, "pki_ca_host": "keeper",
            "pki_api_keys": [{"name": "analyst", "prefix": "dsk", "shared": True}],
            "pki_api_key_output_host": "keeper", "pki_api_key_output_dir": str(base / "keeper-store")}


def test_keys_outlive_the_job_on_the_host_the_operator_chose(base):
    first, events = run(job(base, "job-1", extravars(base)))
    assert (first.status, first.rc) == ("successful", 0), first.stdout.read()[-3000:]
    key_file = base / "keeper-store" / "analyst.key"
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((base / "keeper-store").stat().st_mode) == 0o700
    # Both gateways store a hash of that one key, and nothing else of it.
    for gw in ("gw-a", "gw-b"):
        stored = (base / gw / "api-keys" / "analyst.hash").read_text()
        assert _pki_secrets.verify_key(key, stored) and key not in stored
    # The key is made through the keeper's connection, once, and never shown.
    made = task_results(events, GENERATE)
    assert [e["res"]["_ansible_delegated_vars"]["ansible_host"] for e in made] == ["keeper", "keeper"]
    # The first gateway made it, the second hashed the keeper's file.
    assert [e["res"]["changed"] for e in made] == [True, True]
    everything = json.dumps(events) + first.stdout.read()
    assert key not in everything and key.split("_", 2)[2] not in everything
    # What AWX keeps of the job: its artifacts, with the status.
    artifacts = Path(first.config.artifact_dir)
    assert (artifacts / "status").read_text() == "successful" and (artifacts / "job_events").is_dir()
    shutil.rmtree(base / "job-1")

    # The next job, in a fresh directory (a new container): the key is found, none is made.
    second, events = run(job(base, "job-2", extravars(base)))
    assert (second.status, second.rc) == ("successful", 0), second.stdout.read()[-3000:]
    assert [e["res"]["changed"] for e in task_results(events, GENERATE)] == [False, False]
    assert key_file.read_text().strip() == key
    assert not (base / "job-2" / "keeper-store").exists()


def test_an_output_host_not_in_the_inventory_is_refused_before_any_key_is_made(base):
    variables = dict(extravars(base), pki_api_key_output_host="no-such-host")
    result, events = run(job(base, "job-x", variables))
    assert result.status == "failed"
    failed = [e["res"].get("msg", "") for e in (e["event_data"] for e in events if e.get("event") == "runner_on_failed")]
    assert failed and failed[0].startswith("pki_api_key_output_host: 'no-such-host' is not a host of the inventory"), failed
    assert not (base / "keeper-store").exists()
    assert list((base / "gw-a" / "api-keys").iterdir()) == []
