# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Service states from two ``systemctl`` listings, in the shape ``service_facts`` returns.

``ansible.builtin.service_facts`` also runs ``service --status-all`` (every SysV script's status)
and one ``systemctl show`` per unit file that is not loaded: minutes on a slow host. Two listings
give what the roles read: whether a unit runs, and its unit-file state.
"""

from __future__ import annotations

import re

# As in service_facts: a load or active state that says more than the unit-file state.
BAD_STATES = ("not-found", "masked", "failed")

LIST_UNITS = ["list-units", "--all", "--type=service", "--plain", "--no-legend", "--no-pager", "--full"]
LIST_UNIT_FILES = ["list-unit-files", "--type=service", "--no-legend", "--no-pager", "--full"]


def parse_units(text):
    """``systemctl list-units`` lines (UNIT LOAD ACTIVE SUB DESCRIPTION) by unit name.

    state: ``running`` when SUB is running, else ``stopped``; status: the first of BAD_STATES
    among LOAD, ACTIVE and SUB, else ACTIVE (active, inactive, activating, ...).
    """
    services = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[0].endswith(".service"):
            continue
        name, columns = fields[0], fields[1:4]
        bad = [state for state in BAD_STATES if state in columns]
        services[name] = {
            "name": name,
            "state": "running" if columns[2] == "running" else "stopped",
            "status": bad[0] if bad else columns[1],
            "source": "systemd",
        }
    return services


def merge_unit_files(services, text):
    """Add ``systemctl list-unit-files`` lines (UNIT FILE STATE [PRESET]) to parse_units' result.

    A unit file that is not loaded cannot be running: its state is ``stopped``. A loaded unit
    takes the unit-file state (enabled, disabled, static, ...) unless it is in a bad state.
    """
    merged = {name: dict(entry) for name, entry in services.items()}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[0].endswith(".service"):
            continue
        name, file_state = fields[0], fields[1]
        if name not in merged:
            merged[name] = {"name": name, "state": "stopped", "status": file_state, "source": "systemd"}
        elif merged[name]["status"] not in BAD_STATES:
            merged[name]["status"] = file_state
    return merged


def select_units(services, pattern=None):
    """The entries whose name the regular expression ``pattern`` finds (re.search); all without one."""
    if not pattern:
        return services
    regex = re.compile(pattern)
    return {name: entry for name, entry in services.items() if regex.search(name)}


def service_states(units_text, unit_files_text, pattern=None):
    return select_units(merge_unit_files(parse_units(units_text), unit_files_text), pattern)
