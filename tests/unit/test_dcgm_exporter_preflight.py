"""The dcgm_exporter role's read-only preflight (ansible-playbook on this machine, local connection):
it refuses a bad lock, listen address, interval or client list naming the variable, and publishes
dcgm_exporter_target (empty where the host gets no exporter)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
LOCK = {"driver": "535.161.08", "cuda": "12.2.2", "dcgm": "4.5.3", "dcgm_exporter": "4.8.2"}

# host: (variables, None or a part of the failure message)
CASES = {
    "good": ({}, None),
    "interval_at_the_minimum": ({"dcgm_exporter_collect_interval_ms": 1000}, None),
    "interval_below_the_minimum": ({"dcgm_exporter_collect_interval_ms": 999},
                                   "dcgm_exporter_collect_interval_ms (999) at least 1000"),
    "listen_by_name": ({"dcgm_exporter_listen": "localhost:9400"},
                       "dcgm_exporter_listen: 'localhost:9400' on listen_by_name must be one address and a port"),
    "exporter_of_another_major": ({"gpu_stack_versions": dict(LOCK, dcgm_exporter="3.4.1")},
                                  "gpu_stack_versions is inconsistent: gpu_stack_versions.dcgm_exporter 3.4.1 is built "
                                  "against DCGM 3.x, but the lock has DCGM 4.5.3"),
    "bad_client": ({"dcgm_exporter_allowed_clients": ["10.0.0.300"]}, "dcgm_exporter_allowed_clients"),
    "no_gpu": ({"gpu_host_selected": False, "dcgm_exporter_listen": "localhost:9400"}, None),
    "no_exporter_in_the_lock": ({"gpu_stack_versions": {k: v for k, v in LOCK.items() if k != "dcgm_exporter"},
                                 "dcgm_exporter_collect_interval_ms": 5}, None),
}
TARGETS = {"good": "127.0.0.1:9400", "interval_at_the_minimum": "127.0.0.1:9400", "no_gpu": "",
           "no_exporter_in_the_lock": ""}


@pytest.mark.skipif(not PLAYBOOK.exists() and not shutil.which("ansible-playbook"), reason="needs ansible-playbook")
def test_the_preflight_refuses_bad_input_naming_the_variable_and_publishes_the_target(tmp_path):
    hosts = {name: dict(case) for name, (case, _message) in CASES.items()}
    inventory = {"all": {"vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        # As if gpu_host's preflight had run: a GPU host, the lock evaluated once.
        "gpu_host_selected": True, "gpu_stack_versions": LOCK,
        "gpu_host_stack_lock": "{{ gpu_stack_versions | onprem.deepseek.gpu_stack }}",
        "dcgm_exporter_listen": "127.0.0.1:9400", "dcgm_exporter_allowed_clients": ["10.0.9.0/24"]},
        "hosts": hosts}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    out_dir = tmp_path / "targets"
    out_dir.mkdir()
    (tmp_path / "preflight.yml").write_text(yaml.safe_dump([{
        "name": "DCGM exporter preflight", "hosts": "all", "gather_facts": True,
        "tasks": [
            {"name": "The role's read-only preflight",
             "ansible.builtin.include_role": {"name": "onprem.deepseek.dcgm_exporter", "tasks_from": "preflight.yml"}},
            {"name": "Write the published target",
             "ansible.builtin.copy": {"content": "{{ dcgm_exporter_target | to_json }}",
                                      "dest": str(out_dir) + "/{{ inventory_hostname }}.json", "mode": "0644"}},
        ]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    run = subprocess.run([str(PLAYBOOK) if PLAYBOOK.exists() else "ansible-playbook", "-i", "inventory.yml",
                          "preflight.yml"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    out = run.stdout + run.stderr
    recap = dict(re.findall(r"^(\w+)\s+: ok=\d+\s+changed=\d+\s+unreachable=\d+\s+failed=(\d+)", out, re.M))
    assert recap == {name: "0" if message is None else "1" for name, (_case, message) in CASES.items()}, out[-3000:]
    errors = " ".join(re.findall(r"^\[ERROR\]: Task failed: .*$", out, re.M))
    flat = re.sub(r"\s+", " ", out)
    for name, (_case, message) in CASES.items():
        if message:
            assert message in flat, (name, errors)
    assert {p.stem: json.loads(p.read_text()) for p in out_dir.glob("*.json")} == TARGETS
