"""The storage_tiers role's list of tiers for node_exporter's textfile collector: rendered with
Ansible's own templating, one series per tier, label values escaped, and valid Prometheus text
(promtool check metrics)."""
import shutil
import subprocess

import pytest

from role_templates import DataLoader, ROLES, render_file, role_variables

TEMPLATE = ROLES / "storage_tiers" / "templates" / "tiers.prom.j2"
PROMTOOL = shutil.which("promtool")


def render(tiers):
    loader = DataLoader()
    variables = role_variables(loader, "storage_tiers")
    variables.update(ansible_managed="Ansible managed", __storage_tiers_active=tiers)
    return render_file(TEMPLATE, loader, variables)


def series(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_one_series_per_tier_in_plan_order():
    text = render([{"name": "hot", "mountpoint": "/srv/deepseek/hot"}, {"name": "cold", "mountpoint": "/srv/deepseek/cold"}])
    assert series(text) == [
        'onprem_deepseek_storage_tier_expected{tier="hot",mountpoint="/srv/deepseek/hot"} 1',
        'onprem_deepseek_storage_tier_expected{tier="cold",mountpoint="/srv/deepseek/cold"} 1',
    ]
    assert "# TYPE onprem_deepseek_storage_tier_expected gauge" in text.splitlines()


def test_no_tier_leaves_only_the_comments():
    # A host whose tiers were all skipped expects none: an old list must not keep the alert alive.
    assert series(render([])) == []


def test_quotes_and_backslashes_in_a_mount_point_are_escaped():
    text = render([{"name": "hot", "mountpoint": '/srv/a"b\\c/hot'}])
    assert series(text) == ['onprem_deepseek_storage_tier_expected{tier="hot",mountpoint="/srv/a\\"b\\\\c/hot"} 1']


def test_promtool_accepts_the_list():
    if not PROMTOOL:
        pytest.fail("promtool is missing: run tools/bootstrap (it installs Debian's prometheus package)")
    text = render([{"name": "hot", "mountpoint": "/srv/deepseek/hot"}, {"name": "warm", "mountpoint": '/srv/x"y/warm'}])
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
