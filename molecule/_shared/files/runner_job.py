"""Run one playbook of the thin AWX project the way an AWX job runs it: ansible_runner.run in a private
data directory of its own (env/extravars, env/envvars, inventory/ as an inventory sync exports it,
project/), then print what a workflow sees of it as JSON: status, rc, the stats the playbook
published with set_stats, the hosts each named task ran on, and whether any of the given secrets
appears in the job's events or artifacts.

Usage: runner_job.py DATADIR PLAYBOOK EXTRAVARS_JSON SECRET_FILE... -- INVENTORY...
PLAYBOOK is a file of examples/awx-project/playbooks; each SECRET_FILE holds one secret.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ansible_runner
import yaml

ROOT = Path(__file__).resolve().parents[3]  # molecule/_shared/files -> the repository


def main():
    args = sys.argv[1:]
    split = args.index("--")
    (data, playbook, extravars), secret_files, inventories = args[:3], args[3:split], args[split + 1:]
    data = Path(data)
    if data.exists():
        shutil.rmtree(data)
    for part in ("env", "inventory", "project"):
        (data / part).mkdir(parents=True)
    # The inventory as AWX keeps it after a sync: ansible-inventory's export of the sources.
    exported = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "--list", "--yaml", "--export"]
        + [a for inv in inventories for a in ("-i", inv)],
        check=True, capture_output=True, text=True, timeout=120).stdout
    (data / "inventory" / "hosts.yml").write_text(exported)
    shutil.copy(ROOT / "examples" / "awx-project" / "playbooks" / playbook, data / "project" / playbook)
    (data / "env" / "extravars").write_text(yaml.safe_dump(json.loads(extravars)))
    (data / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".venv" / "collections")),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "false",
    }))
    # ansible-runner starts ansible-playbook from PATH: this virtualenv's, as the job's image has it.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    result = ansible_runner.run(private_data_dir=str(data), playbook=playbook, quiet=True, timeout=1200)
    events = list(result.events)
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    ran = {}
    for e in events:
        if e.get("event") == "runner_on_ok":
            ran.setdefault(e["event_data"].get("task", ""), []).append(e["event_data"].get("host"))
    failed = [{"task": e["event_data"].get("task"), "host": e["event_data"].get("host"),
               "msg": str(e["event_data"].get("res", {}).get("msg", ""))[:500]}
              for e in events if e.get("event") == "runner_on_failed" and not e["event_data"].get("ignore_errors")]
    everything = json.dumps(events)
    for path in (data / "artifacts").rglob("*"):
        if path.is_file():
            everything += path.read_text(errors="replace")
    secrets = [Path(f).read_text().strip() for f in secret_files]
    print(json.dumps({
        "status": result.status, "rc": result.rc,
        "artifact_status": next((data / "artifacts").glob("*/status")).read_text().strip(),
        "stats": stats[-1]["event_data"].get("artifact_data", {}) if stats else None,
        "ran": ran, "failed": failed,
        "secrets_seen": sum(1 for s in secrets if s and s in everything),
    }))


if __name__ == "__main__":
    main()
