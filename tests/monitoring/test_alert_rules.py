"""The monitoring role's alert rules: promtool accepts them and their unit tests pass, the set of
alerts is the documented one, each alert is labelled, annotated and has a runbook section, and each
is shown firing (and not firing) by a promtool test. Also the dcgm-exporter counters file: its
format, and that it enables every DCGM field the rules use.

promtool (Debian's prometheus package) is required: tools/bootstrap installs it.
"""
import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "roles/monitoring/files/prometheus/rules/onprem-deepseek.rules.yml"
TESTS = sorted((ROOT / "tests/monitoring/rules").glob("*.test.yml"))
RUNBOOKS = ROOT / "docs/runbooks.md"
COUNTERS = ROOT / "roles/dcgm_exporter/files/onprem-deepseek-counters.csv"

ALERTS = {
    "GPUUtilizationHigh", "InferenceLatencyHigh", "HostMemoryHigh", "GPUXidError", "GPUEccUncorrectable",
    "GPURowRemapFailure", "GPUTemperatureHigh", "NVLinkErrors", "FabricManagerDown", "InferenceDown",
    "InferenceQueueBacklog", "KVCacheNearlyFull", "GatewayErrorRateHigh", "CertificateExpiringSoon",
    "DiskTierFull", "DiskTierNotMounted", "DRReplicationLagHigh", "SiteDown", "DREntryWithdrawn",
}
GROUPS = {"onprem-deepseek." + area for area in ("gpu", "inference", "gateway", "host", "storage", "pki", "dr")}


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool is not installed: run tools/bootstrap (it installs Debian's prometheus package)")
    return path


def run(promtool, *args):
    result = subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    return result.returncode, result.stdout + result.stderr


def rules():
    """(group name, rule) for every alerting rule."""
    doc = yaml.safe_load(RULES.read_text())
    return [(group["name"], rule) for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def rule_tests():
    """(test file, alertname, expected alerts) for every alert_rule_test case."""
    return [(path.name, case["alertname"], case.get("exp_alerts") or [])
            for path in TESTS
            for test in yaml.safe_load(path.read_text())["tests"]
            for case in test.get("alert_rule_test", [])]


def test_promtool_checks_the_rule_file(promtool):
    rc, out = run(promtool, "check", "rules", str(RULES))
    assert rc == 0, out


def test_there_are_rule_tests():
    assert TESTS, "no tests/monitoring/rules/*.test.yml"


@pytest.mark.parametrize("path", TESTS, ids=[p.name for p in TESTS])
def test_promtool_unit_tests_pass(promtool, path):
    doc = yaml.safe_load(path.read_text())
    assert [(path.parent / f).resolve() for f in doc["rule_files"]] == [RULES], \
        "%s must test the collection's rule file, by a path relative to the test file" % path.name
    rc, out = run(promtool, "test", "rules", str(path))
    assert rc == 0, out


def test_the_alerts_are_exactly_the_documented_ones():
    names = [rule["alert"] for _group, rule in rules()]
    assert set(names) == ALERTS
    assert {group for group, _rule in rules()} == GROUPS


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_alert_is_labelled_and_annotated(name):
    found = [rule for _group, rule in rules() if rule["alert"] == name]
    assert found, name
    for rule in found:
        assert rule["labels"]["severity"] in ("critical", "warning")
        notes = rule["annotations"]
        assert "$labels.instance" in notes["summary"]
        assert "$value" in notes["description"]
        assert notes["runbook_url"] == "docs/runbooks.md#" + name.lower()


def test_every_runbook_url_names_a_heading_of_the_runbooks():
    headings = {anchor(line.lstrip("#")) for line in RUNBOOKS.read_text().splitlines() if re.match(r"#{1,6} ", line)}
    missing = sorted({rule["annotations"]["runbook_url"] for _group, rule in rules()}
                     - {"docs/runbooks.md#" + h for h in headings})
    assert not missing, "runbook_url without a heading in docs/runbooks.md: %s" % missing


def test_every_alert_is_tested_firing_and_not_firing():
    cases = rule_tests()
    unknown = {name for _f, name, _exp in cases} - ALERTS
    assert not unknown, "tests of alerts that do not exist: %s" % unknown
    firing = {name for _f, name, exp in cases if exp}
    quiet = {name for _f, name, exp in cases if not exp}
    assert ALERTS - firing == set(), "alerts no promtool test shows firing"
    assert ALERTS - quiet == set(), "alerts no promtool test shows not firing"


def test_the_expected_alerts_carry_the_rules_annotations():
    """promtool compares annotations only when given: every expected alert gives all three."""
    for path_name, name, exp in rule_tests():
        for alert in exp:
            assert set(alert.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}, \
                "%s: an expected %s without its annotations" % (path_name, name)


def counters():
    lines = [line for line in COUNTERS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [[field.strip() for field in row] for row in csv.reader(lines)]


def test_the_dcgm_counters_file_has_three_fields_a_line():
    rows = counters()
    assert rows
    for row in rows:
        assert len(row) == 3, row  # dcgm-exporter refuses any other count (a comma in the help)
        field, kind, help_text = row
        assert re.fullmatch(r"DCGM_FI_[A-Z0-9_]+", field), row
        assert kind in ("gauge", "counter", "label"), row
        assert help_text, row
    names = [row[0] for row in rows]
    assert len(names) == len(set(names)), "a field listed twice"


def test_the_dcgm_counters_enable_every_field_the_rules_use():
    used = set(re.findall(r"\bDCGM_FI_[A-Z0-9_]+", RULES.read_text()))
    assert used, "the rules use no DCGM field?"
    enabled = {row[0] for row in counters()}
    assert used - enabled == set(), "fields the rules use but dcgm-exporter would not export"
    wanted = {
        "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "DCGM_FI_DEV_RETIRED_SBE", "DCGM_FI_DEV_RETIRED_DBE", "DCGM_FI_DEV_RETIRED_PENDING",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
        "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
    }
    assert wanted - enabled == set()
