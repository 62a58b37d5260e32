"""_service_states: the listings of a sandbox host (recorded: the bookworm image booted in
systemd-nspawn), and hand-written lines for the cases that image lacks (running inference units)."""
from pathlib import Path

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._service_states import (
    merge_unit_files, parse_units, select_units, service_states)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "systemd"
UNITS = (FIXTURES / "bookworm-nspawn-list-units.txt").read_text()
UNIT_FILES = (FIXTURES / "bookworm-nspawn-list-unit-files.txt").read_text()


def test_running_loaded_unit_takes_its_unit_file_state():
    services = service_states(UNITS, UNIT_FILES)
    assert services["systemd-journald.service"] == {
        "name": "systemd-journald.service", "state": "running", "status": "static", "source": "systemd"}


def test_exited_oneshot_is_stopped():
    assert parse_units(UNITS)["systemd-sysctl.service"]["state"] == "stopped"
    assert parse_units(UNITS)["systemd-sysctl.service"]["status"] == "active"


@pytest.mark.parametrize("name, status", [
    ("auditd.service", "not-found"),     # named by another unit, no unit file
    ("console-getty.service", "masked"),
    ("ssh.service", "failed"),
])
def test_bad_states_win_over_the_unit_file_state(name, status):
    services = service_states(UNITS, UNIT_FILES)
    assert services[name]["status"] == status
    assert services[name]["state"] == "stopped"


def test_unit_file_that_is_not_loaded_is_listed_stopped():
    assert "getty@.service" not in parse_units(UNITS)
    assert service_states(UNITS, UNIT_FILES)["getty@.service"] == {
        "name": "getty@.service", "state": "stopped", "status": "enabled", "source": "systemd"}


def test_every_unit_of_both_listings_is_there():
    names = {line.split()[0] for line in (UNITS + UNIT_FILES).splitlines() if line.split()}
    assert set(service_states(UNITS, UNIT_FILES)) == names


def test_merge_does_not_change_its_input():
    units = parse_units(UNITS)
    before = {name: dict(entry) for name, entry in units.items()}
    merge_unit_files(units, UNIT_FILES)
    assert units == before


@pytest.mark.parametrize("description", ["failed over engines", "Restarts failed engines"])
def test_description_words_are_not_read_as_states(description):
    # service_facts reads every column but the last: a description word "failed" made it failed.
    line = "deepseek-inference-r1.service loaded active running %s\n" % description
    assert parse_units(line)["deepseek-inference-r1.service"]["status"] == "active"


def test_short_and_foreign_lines_are_skipped():
    text = "\nfoo.socket loaded active listening Sockets\nbar.service loaded active\n"
    assert parse_units(text) == {}
    assert merge_unit_files({}, "foo.timer enabled enabled\nbar.service\n") == {}


def test_lines_after_a_skipped_one_are_read():
    assert list(parse_units("foo.socket loaded active listening x\na.service loaded active running x\n")) == ["a.service"]
    assert list(merge_unit_files({}, "foo.timer enabled enabled\na.service enabled enabled\n")) == ["a.service"]


def test_four_columns_are_enough():
    assert parse_units("a.service loaded active running")["a.service"]["state"] == "running"


def test_unit_files_without_the_preset_column():
    # systemd before 245 prints UNIT FILE and STATE only.
    assert merge_unit_files({}, "a.service masked\n")["a.service"]["status"] == "masked"


LIVE = """deepseek-inference-r1.service loaded active running DeepSeek inference r1
deepseek-inference-coder.service loaded inactive dead DeepSeek inference coder
deepseek-inference-old.service not-found inactive dead deepseek-inference-old.service
deepseek-gateway.service loaded active running gateway
"""


def test_pattern_selects_by_search():
    services = service_states(LIVE, "deepseek-inference-r1.service enabled enabled\n",
                              r"^deepseek-inference-.+\.service$")
    assert sorted(services) == ["deepseek-inference-coder.service", "deepseek-inference-old.service",
                                "deepseek-inference-r1.service"]
    assert services["deepseek-inference-r1.service"]["status"] == "enabled"
    assert services["deepseek-inference-old.service"]["status"] == "not-found"
    assert sorted(select_units(services, "r1")) == ["deepseek-inference-r1.service"]


@pytest.mark.parametrize("pattern", [None, ""])
def test_no_pattern_returns_all(pattern):
    services = parse_units(LIVE)
    assert select_units(services, pattern) == services
