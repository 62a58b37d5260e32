"""Roles talk to each other through documented public facts and entry points only.

A role's private variables (``__<role>_*``) are its own: another role, a playbook or a scenario
that reads them couples itself to that role's insides. Scenarios' verify steps may look inside
the role they test, so molecule/ is not scanned.
"""
import re
from pathlib import Path

import pytest
import yaml

from test_role_phases import SET_FACT, tasks_in

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
# Longest first, so that a role whose name starts with another's is matched by its own name.
OWNERS = sorted(ROLES, key=len, reverse=True)
PRIVATE = re.compile(r"\b__([a-z][a-z0-9_]*)")


def owner_of(name):
    return next((role for role in OWNERS if name.startswith(role + "_")), None)


def foreign_reads(path, reader, base=ROOT):
    """Each ``file:line __var`` in ``path`` naming a private variable of a role other than ``reader``."""
    found = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        for match in PRIVATE.finditer(line):
            owner = owner_of(match.group(1))
            if owner is not None and owner != reader:
                found.append(f"{path.relative_to(base)}:{lineno} __{match.group(1)}")
    return found


def files_of(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".yml", ".yaml", ".j2"))


def test_owner_of_prefers_the_longest_role_name(tmp_path):
    # `storage_tiers` must not be read as a role `storage`, nor `hsm_token` as private.
    assert owner_of("storage_tiers_key") == ("storage_tiers" if "storage_tiers" in ROLES else None)
    assert owner_of("nosuchrole_x") is None
    sample = tmp_path / "t.yml"
    sample.write_text("a: '{{ __hsm_module }}'\nb: '{{ hsm_token.module }}'\nc: '{{ __pki_x }}'\n")
    assert foreign_reads(sample, "pki", base=tmp_path) == ["t.yml:1 __hsm_module"]
    assert foreign_reads(sample, "hsm", base=tmp_path) == ["t.yml:3 __pki_x"]


@pytest.mark.parametrize("role", ROLES)
def test_role_reads_no_other_roles_private_variables(role):
    found = [hit for f in files_of(ROOT / "roles" / role) for hit in foreign_reads(f, role)]
    assert not found, f"role {role} reads other roles' private variables: {found}"


def test_playbooks_read_no_roles_private_variables():
    found = [hit for f in files_of(ROOT / "playbooks") for hit in foreign_reads(f, None)]
    assert not found, f"playbooks read roles' private variables: {found}"


def set_fact_names(node):
    """Every variable name a task list sets with set_fact, blocks included."""
    return [key for task in tasks_in(node) for arg in (task.get(k) for k in SET_FACT) if isinstance(arg, dict)
            for key in arg if key != "cacheable"]


def public_facts(role):
    names = set()
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        names.update(n for n in set_fact_names(yaml.safe_load(path.read_text()) or []) if not n.startswith("_"))
    return sorted(names)


def test_set_fact_names_walks_blocks():
    tasks = [{"ansible.builtin.set_fact": {"a": 1, "cacheable": True}},
             {"block": [{"set_fact": {"b": 2}}], "rescue": [{"ansible.builtin.set_fact": {"c": 3}}],
              "always": [{"ansible.builtin.debug": {"msg": "x"}}]}]
    assert set_fact_names(tasks) == ["a", "b", "c"]


@pytest.mark.parametrize("role", ROLES)
def test_role_documents_every_fact_it_publishes(role):
    readme = (ROOT / "roles" / role / "README.md").read_text()
    undocumented = [name for name in public_facts(role) if "`%s`" % name not in readme]
    assert not undocumented, f"role {role} publishes facts its README does not name: {undocumented}"
