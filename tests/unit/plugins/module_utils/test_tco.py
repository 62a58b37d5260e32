"""The TCO model: hand-computed figures, every input boundary on both sides, break-even and ROI.

Every expected figure is worked out in the comment above it. Shared constants: 730 hours a month,
0.8 CNY/kWh, one person at 250,000 CNY a year = 20,833.33 CNY a month, 5 years = 60 months.
"""
import contextlib
import datetime
import io
import inspect
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._tco import (
    OPTION_NAMES,
    PROFILE_KEYS,
    PROFILES,
    TcoError,
    tco,
)

DOC = Path(__file__).resolve().parents[4] / "docs" / "capacity-report.md"


def flat(name="flat", hardware=1200, watts=0, gpus=1, gpu_hour=0):
    """A profile whose figures make the arithmetic obvious: by default no power, no cloud price."""
    return {"name": name, "label": "test server", "gpus": gpus, "hardware_cny": hardware, "gpu_watts": watts,
            "other_watts": 0, "cloud_cny_per_gpu_hour": gpu_hour}


def gpu_fact(*draws, reason=None):
    return {"gpu_count": len(draws), "reason": reason, "gpus": [{"index": i, "power_draw_w": d} for i, d in enumerate(draws)]}


# --- The deployment guide's three profiles, defaults only (1 server, 5 years) ---------------

def test_a100_2x_dev_test():
    r = tco("a100_2x")
    # Power: 2 x 300 W + 600 W = 1,200 W; 1.2 kW x 730 h = 876 kWh a month; x 0.8 = 700.80 CNY.
    assert r["power"] == {"node_watts": 1200.0, "facility_watts": 1200.0, "kwh_per_month": 876.0,
                          "basis": "nominal (profile a100_2x)", "nominal_node_watts": 1200.0, "hosts": []}
    # Running cost a month: 700.80 + 20,833.33 = 21,534.13. Cloud: 2 GPUs x 730 h x 37 = 54,020.
    assert r["monthly"] == {"electricity_cny": 700.8, "ops_staff_cny": 20833.33, "operating_cny": 21534.13,
                            "cloud_cny": 54020.0}
    # 60 months: electricity 42,048; staff 1,250,000; + hardware 525,000 = 1,817,048.
    # Cloud 60 x 54,020 = 3,241,200. TCO = 1,817,048 - 3,241,200 = -1,424,152.
    assert r["totals"] == {"hardware_cny": 525000.0, "electricity_cny": 42048.0, "ops_staff_cny": 1250000.0,
                           "local_cny": 1817048.0, "cloud_cny": 3241200.0, "tco_cny": -1424152.0}
    # ROI = 1,424,152 / 1,817,048 = 0.78377...
    assert r["roi"] == 0.7838
    # Month 16: 525,000 + 16 x 21,534.13 = 869,546.13 > 16 x 54,020 = 864,320;
    # month 17: 891,080.27 <= 918,340.
    assert r["break_even_month"] == 17
    assert r["cumulative"][16] == {"month": 16, "local_cny": 869546.13, "cloud_cny": 864320.0}
    assert r["cumulative"][17] == {"month": 17, "local_cny": 891080.27, "cloud_cny": 918340.0}


def test_h100_4x_medium():
    r = tco("h100_4x")
    # 4 x 350 W + 800 W = 2,200 W; 2.2 x 730 = 1,606 kWh; x 0.8 = 1,284.80 CNY a month.
    assert (r["power"]["node_watts"], r["power"]["kwh_per_month"], r["monthly"]["electricity_cny"]) == (2200.0, 1606.0, 1284.8)
    # Cloud: 4 x 730 x 50 = 146,000 a month, 8,760,000 over 60 months.
    # Local: 1,500,000 + 60 x 1,284.80 (77,088) + 1,250,000 = 2,827,088; TCO -5,932,912.
    assert r["totals"] == {"hardware_cny": 1500000.0, "electricity_cny": 77088.0, "ops_staff_cny": 1250000.0,
                           "local_cny": 2827088.0, "cloud_cny": 8760000.0, "tco_cny": -5932912.0}
    # ROI = 5,932,912 / 2,827,088 = 2.09862...
    assert r["roi"] == 2.0986
    # Running cost 22,118.13 a month. Month 12: 1,765,417.60 > 1,752,000; month 13: 1,787,535.73 <= 1,898,000.
    assert r["break_even_month"] == 13
    assert r["cumulative"][12]["local_cny"] == 1765417.6


def test_h100_8x_sxm_large():
    r = tco("h100_8x_sxm")
    # 8 x 700 W + 4,600 W = 10,200 W (DGX H100's maximum); 10.2 x 730 = 7,446 kWh; x 0.8 = 5,956.80 CNY.
    assert (r["power"]["node_watts"], r["power"]["kwh_per_month"], r["monthly"]["electricity_cny"]) == (10200.0, 7446.0, 5956.8)
    # Cloud: 8 x 730 x 50 = 292,000 a month, 17,520,000 over 60 months.
    # Local: 4,000,000 + 60 x 5,956.80 (357,408) + 1,250,000 = 5,607,408; TCO -11,912,592.
    assert r["totals"] == {"hardware_cny": 4000000.0, "electricity_cny": 357408.0, "ops_staff_cny": 1250000.0,
                           "local_cny": 5607408.0, "cloud_cny": 17520000.0, "tco_cny": -11912592.0}
    # ROI = 11,912,592 / 5,607,408 = 2.12443...
    assert r["roi"] == 2.1244
    # Running cost 26,790.13. Month 15: 4,401,852.00 > 4,380,000; month 16: 4,428,642.13 <= 4,672,000.
    assert r["break_even_month"] == 16
    assert r["cumulative"][15] == {"month": 15, "local_cny": 4401852.0, "cloud_cny": 4380000.0}


def test_profiles_are_complete_and_named_as_documented():
    assert sorted(PROFILES) == ["a100_2x", "h100_4x", "h100_8x_sxm"]
    for name, profile in PROFILES.items():
        assert set(profile) == set(PROFILE_KEYS), name
    # The guide's price ranges, midpoints: (45+60)/2, (120+180)/2, (300+500)/2 x 10,000 CNY.
    assert [PROFILES[n]["hardware_cny"] for n in sorted(PROFILES)] == [525000, 1500000, 4000000]
    assert [PROFILES[n]["gpus"] for n in sorted(PROFILES)] == [2, 4, 8]


# --- Break-even and ROI -----------------------------------------------------------------------

def test_break_even_on_an_exact_month_boundary():
    # Hardware 1,200, nothing else local; cloud 100 a month. Month 11: 1,200 > 1,100; month 12: 1,200 <= 1,200.
    r = tco(flat(), years=1, ops_staff=0, cloud_cny_per_month=100)
    assert r["break_even_month"] == 12
    assert r["cumulative"][11] == {"month": 11, "local_cny": 1200.0, "cloud_cny": 1100.0}
    # Equal totals: TCO 0 and ROI exactly 0.
    assert (r["totals"]["tco_cny"], r["roi"]) == (0.0, 0.0)
    # One cent more and it is month 13: outside a 1-year horizon, inside a 2-year one.
    assert tco(flat(hardware=1200.01), years=1, ops_staff=0, cloud_cny_per_month=100)["break_even_month"] is None
    assert tco(flat(hardware=1200.01), years=2, ops_staff=0, cloud_cny_per_month=100)["break_even_month"] == 13


def test_break_even_is_exact_where_floats_are_not():
    # 1,000 W x 730 h = 730 kWh x 0.1 CNY = 73 CNY a month (0.1 * 730 is 73.00000000000001 in floats).
    # Cloud 173 a month: 1,200 + 73m <= 173m from m = 12 on, exactly.
    r = tco(flat(), years=1, ops_staff=0, node_watts=1000, electricity_cny_per_kwh=0.1, cloud_cny_per_month=173)
    assert r["monthly"]["electricity_cny"] == 73.0
    assert r["break_even_month"] == 12


def test_never_breaks_even_when_the_cloud_costs_less_than_running_locally():
    # Running cost 20,833.33 a month (one person) against a cloud bill of 20,000: never, ROI negative.
    r = tco(flat(hardware=0), years=10, cloud_cny_per_month=20000)
    assert r["break_even_month"] is None
    # Local 120 x 20,833.33 = 2,500,000; cloud 2,400,000; ROI = -100,000 / 2,500,000 = -0.04.
    assert (r["totals"]["local_cny"], r["totals"]["cloud_cny"], r["totals"]["tco_cny"]) == (2500000.0, 2400000.0, 100000.0)
    assert r["roi"] == -0.04
    assert r["report"]["totals"][-1] == ["Break-even", "not within 10 years"]
    assert "does not cost less" in r["report"]["summary"]


def test_no_hardware_and_a_cheaper_local_run_breaks_even_in_the_first_month():
    # Local 20,833.33 a month against 30,000: month 1. ROI = (360,000 - 250,000) / 250,000 = 0.44.
    r = tco(flat(hardware=0), years=1, cloud_cny_per_month=30000)
    assert (r["break_even_month"], r["roi"]) == (1, 0.44)


def test_roi_sign_and_none_when_nothing_is_spent_locally():
    # Cloud 0: local 1,200 against nothing avoided: ROI = -1,200 / 1,200 = -1.
    assert tco(flat(), years=1, ops_staff=0)["roi"] == -1.0
    # Cloud 200 a month: 2,400 avoided against 1,200: ROI = +1.
    assert tco(flat(), years=1, ops_staff=0, cloud_cny_per_month=200)["roi"] == 1.0
    # Nothing local: no ratio.
    r = tco(flat(hardware=0), years=1, ops_staff=0, cloud_cny_per_month=10)
    assert (r["roi"], r["break_even_month"]) == (None, 1)
    assert r["report"]["totals"][6][1] == "n/a"


# --- Options ----------------------------------------------------------------------------------

def test_every_option_changes_its_figure():
    base = dict(years=2, nodes=3, hardware_cny=1000, electricity_cny_per_kwh=0.5, pue=1.5, node_watts=2000,
                ops_staff=0.5, ops_staff_cny_per_year=120000)
    r = tco(flat(gpus=4, gpu_hour=10), **base)
    # Power: 2,000 W x 3 servers x PUE 1.5 = 9,000 W; 9 x 730 = 6,570 kWh; x 0.5 = 3,285 CNY.
    assert (r["power"]["facility_watts"], r["power"]["kwh_per_month"], r["monthly"]["electricity_cny"]) == (9000.0, 6570.0, 3285.0)
    # Staff: 0.5 x 120,000 / 12 = 5,000. Cloud: 4 GPUs x 3 servers x 730 h x 10 = 87,600.
    assert (r["monthly"]["ops_staff_cny"], r["monthly"]["cloud_cny"]) == (5000.0, 87600.0)
    # 24 months: hardware 3 x 1,000 = 3,000; electricity 78,840; staff 120,000; local 201,840; cloud 2,102,400.
    assert r["totals"] == {"hardware_cny": 3000.0, "electricity_cny": 78840.0, "ops_staff_cny": 120000.0,
                           "local_cny": 201840.0, "cloud_cny": 2102400.0, "tco_cny": -1900560.0}
    assert (r["years"], r["months"], r["nodes"], len(r["cumulative"])) == (2, 24, 3, 25)
    # A cloud price per GPU-hour replaces the profile's: 12 GPUs x 730 x 20 = 175,200.
    assert tco(flat(gpus=4, gpu_hour=10), cloud_cny_per_gpu_hour=20, **base)["monthly"]["cloud_cny"] == 175200.0
    # A monthly cloud bill replaces the GPU-hour estimate.
    assert tco(flat(gpus=4, gpu_hour=10), cloud_cny_per_month=5, cloud_cny_per_gpu_hour=20, **base)["monthly"]["cloud_cny"] == 5.0


def test_numbers_may_come_as_strings_from_extra_vars():
    assert tco("h100_8x_sxm", years="10", pue="1.25", electricity_cny_per_kwh="0.65", nodes="2") == \
        tco("h100_8x_sxm", years=10, pue=1.25, electricity_cny_per_kwh=0.65, nodes=2)
    # 5.0 is a whole number of years.
    assert tco("a100_2x", years=5.0)["months"] == 60


def test_cumulative_series_starts_with_the_hardware():
    r = tco(flat(), years=1, ops_staff=0, cloud_cny_per_month=100)
    assert r["cumulative"][0] == {"month": 0, "local_cny": 1200.0, "cloud_cny": 0.0}
    assert r["cumulative"][-1] == {"month": 12, "local_cny": 1200.0, "cloud_cny": 1200.0}


# --- Power: set, measured, nominal ------------------------------------------------------------

HOSTS = ["gpu-a", "gpu-b", "gpu-c", "gpu-d", "gpu-e"]
FACTS = {
    "gpu-a": gpu_fact(*[500.5] * 8),  # 8 x 500.5 = 4,004 W + 4,600 = 8,604 W
    "gpu-b": gpu_fact(*[600] * 8),  # 8 x 600 = 4,800 W + 4,600 = 9,400 W
    "gpu-c": None,  # not read in this run
    "gpu-d": {"gpu_count": 0, "reason": "nvidia-smi not found", "gpus": []},
    "gpu-e": gpu_fact(300.0, None),  # one GPU without a reading
}


def test_measured_servers_set_the_draw_of_every_server():
    r = tco("h100_8x_sxm", hosts=HOSTS, gpu_facts=FACTS)
    # Mean of the measured: (8,604 + 9,400) / 2 = 9,002 W; 5 servers (the hosts) = 45,010 W.
    assert r["nodes"] == 5
    assert (r["power"]["node_watts"], r["power"]["facility_watts"]) == (9002.0, 45010.0)
    assert r["power"]["basis"].startswith("measured on 2 of 5 servers (mean)")
    assert [(h["host"], h["measured"], h["gpus"], h["gpu_watts"], h["node_watts"], h["reason"]) for h in r["power"]["hosts"]] == [
        ("gpu-a", True, 8, 4004.0, 8604.0, None),
        ("gpu-b", True, 8, 4800.0, 9400.0, None),
        ("gpu-c", False, 0, None, None, "GPU facts not read in this run"),
        ("gpu-d", False, 0, None, None, "nvidia-smi not found"),
        ("gpu-e", False, 2, None, None, "1 of 2 GPUs did not report their power draw"),
    ]
    assert r["report"]["hosts"][0] == ["gpu-a", "8", "4,004", "measured"]


def test_a_set_draw_wins_over_measured_and_nominal():
    r = tco("h100_8x_sxm", hosts=HOSTS, gpu_facts=FACTS, node_watts=7000, nodes=2)
    # 7,000 W x 2 servers = 14,000 W.
    assert (r["power"]["node_watts"], r["power"]["facility_watts"], r["power"]["basis"]) == (7000.0, 14000.0, "set")


def test_without_readings_the_nominal_figure_counts():
    r = tco("h100_8x_sxm", hosts=["gpu-c", "gpu-d"], gpu_facts=FACTS)
    # Two servers at 10,200 W, PUE 1: 20,400 W.
    assert (r["nodes"], r["power"]["facility_watts"], r["power"]["basis"]) == (2, 20400.0, "nominal (profile h100_8x_sxm)")


def test_nodes_default_to_the_hosts_or_one():
    assert tco("a100_2x")["nodes"] == 1
    assert tco("a100_2x", hosts=["x", "y", "x"])["nodes"] == 2
    assert tco("a100_2x", hosts=["x", "y"], nodes=4)["nodes"] == 4


def test_a_malformed_gpu_fact_is_refused_naming_the_host():
    with pytest.raises(TcoError, match=r"^gpu_facts\[gpu-a\]: must be the gpu facts of onprem.deepseek.gpu_facts"):
        tco("a100_2x", hosts=["gpu-a"], gpu_facts={"gpu-a": "80 W"})


# --- Validation: both sides of every boundary ------------------------------------------------

@pytest.mark.parametrize("option, good, bad, message", [
    ("years", [1, 10, "7"], [0, 11, 2.5, "five", True, -1], "must be a whole number from 1 to 10"),
    ("nodes", [1, 64], [0, -2, 1.5, "x"], "must be a whole number of at least 1"),
    ("hardware_cny", [0, 1], [-1, "lots"], "must be a number of at least 0"),
    ("electricity_cny_per_kwh", [0, 0.8], [-0.01, "nan", float("inf")], "must be a number of at least 0"),
    ("pue", [1, 3, 1.4], [0.99, 3.01, 0], "must be a number from 1 to 3"),
    ("node_watts", [0.5, 10200], [0, -1], "must be a number greater than 0"),
    ("ops_staff", [0, 0.5], [-0.5], "must be a number of at least 0"),
    ("ops_staff_cny_per_year", [0, 250000], [-1], "must be a number of at least 0"),
    ("cloud_cny_per_gpu_hour", [0, 50], [-0.1], "must be a number of at least 0"),
    ("cloud_cny_per_month", [0, 292000], [-1], "must be a number of at least 0"),
])
def test_each_number_is_accepted_on_its_bounds_and_refused_beyond(option, good, bad, message):
    for value in good:
        tco("a100_2x", **{option: value})
    for value in bad:
        with pytest.raises(TcoError) as err:
            tco("a100_2x", variable_prefix="capacity_report_", **{option: value})
        assert str(err.value).startswith("capacity_report_%s: %s, not " % (option, message)), (value, str(err.value))


def test_the_message_shows_the_value_as_given():
    with pytest.raises(TcoError, match=r"^capacity_report_years: must be a whole number from 1 to 10, not 0$"):
        tco("h100_8x_sxm", years="0", variable_prefix="capacity_report_")
    with pytest.raises(TcoError, match=r"^years: must be a whole number from 1 to 10, not 'five'$"):
        tco("h100_8x_sxm", years="five")


def test_every_wrong_value_is_named_in_one_message():
    with pytest.raises(TcoError) as err:
        tco("h100_9x", years=11, pue=0.5, electricity_cny_per_kwh=-1, variable_prefix="v_")
    assert [part.split(":")[0] for part in str(err.value).split("; ")] == [
        "v_profile", "v_years", "v_electricity_cny_per_kwh", "v_pue"]


@pytest.mark.parametrize("profile, message", [
    (None, r"^profile: must be one of a100_2x, h100_4x, h100_8x_sxm or a dict of label, gpus, .*, not None$"),
    ("h100_9x", r"^profile: must be one of .*, not 'h100_9x'$"),
    (dict(flat(), cores=64), r"^profile: unknown keys cores \(known: label, .*, name\)\.$"),
    ({k: v for k, v in flat().items() if k != "gpu_watts"}, r"^profile: missing keys gpu_watts\.$"),
    (dict(flat(), gpus=0), r"^profile\.gpus: must be a whole number of at least 1, not 0$"),
    (dict(flat(), gpu_watts=-5), r"^profile\.gpu_watts: must be a number of at least 0, not -5$"),
    (dict(flat(), label="a | b"), r"^profile\.label: must be a non-empty line of text without \|"),
    (dict(flat(), name=""), r"^profile\.name: must be a non-empty line of text"),
])
def test_a_wrong_profile_is_refused(profile, message):
    with pytest.raises(TcoError, match=message):
        tco(profile)


def test_a_custom_profile_is_used_as_given():
    r = tco(flat(gpus=1, gpu_hour=10), years=1, ops_staff=0)
    assert r["profile"] == {"name": "flat", "label": "test server", "gpus": 1}
    # 1 GPU x 730 h x 10 = 7,300 a month.
    assert r["monthly"]["cloud_cny"] == 7300.0


@pytest.mark.parametrize("option, value, message", [
    ("hosts", "gpu-a", "hosts: must be a list of host names"),
    ("hosts", ["gpu-a", ""], "hosts: must be a list of host names"),
    ("gpu_facts", ["gpu-a"], "gpu_facts: must be a dict of host name to gpu facts"),
    ("date", "2026-13-01", "date: must be a date as YYYY-MM-DD, not '2026-13-01'"),
    ("date", 20261201, "date: must be a date as YYYY-MM-DD, not 20261201"),
    ("date", "2026-1-1", "date: must be a date as YYYY-MM-DD"),
])
def test_other_inputs_are_checked(option, value, message):
    with pytest.raises(TcoError, match="^" + re.escape(message)):
        tco("a100_2x", **{option: value})


def test_variable_prefix_must_be_text():
    with pytest.raises(TcoError, match="^variable_prefix: must be a string"):
        tco("a100_2x", variable_prefix=None)


def test_option_names_are_the_signature():
    # inspect follows __wrapped__, so this also holds under a decorator (mutation runs add one).
    assert tuple(inspect.signature(tco).parameters)[1:] == OPTION_NAMES


# --- What the reports print -------------------------------------------------------------------

def test_report_says_where_each_figure_comes_from():
    rows = {row[0]: row[1:] for row in tco("h100_8x_sxm", pue=1.3, date="2026-12-01")["report"]["inputs"]}
    assert rows["PUE"] == ["1.3", "set"]
    assert rows["Electricity price"] == ["0.8 CNY/kWh", "default (deployment guide)"]
    assert rows["Hardware per server"] == ["4,000,000 CNY", "profile h100_8x_sxm (midpoint of the guide's price range)"]
    assert rows["Avoided cloud spend"] == ["292,000 CNY per month", "8 GPUs x 730 h x 50 CNY per GPU-hour (profile)"]
    assert tco("h100_8x_sxm", date="2026-12-01")["report"]["date"] == "2026-12-01"
    assert tco("h100_8x_sxm")["report"]["date"] is None
    # An unquoted date in a YAML vars file arrives as a date.
    assert tco("h100_8x_sxm", date=datetime.date(2026, 12, 1))["report"]["date"] == "2026-12-01"


def test_report_rows_per_year():
    r = tco(flat(), years=2, ops_staff=0, cloud_cny_per_month=100)
    # Year 1: local 1,200, cloud 1,200, difference 0; year 2: 1,200 against 2,400.
    assert r["report"]["years"] == [["1", "1,200", "1,200", "0"], ["2", "1,200", "2,400", "1,200"]]


def test_chart_geometry():
    c = tco(flat(), years=1, ops_staff=0, cloud_cny_per_month=100)["chart"]
    # Highest value 1,200; step the nice number above 1,200 / 5 = 240, so 250; top 1,250.
    assert [t["label"] for t in c["y_ticks"]] == ["0", "250", "500", "750", "1,000", "1,250"]
    # Plot: x from 100 to 700 (600 wide), y from 310 (0) up to 20 (1,250), 290 high.
    # Local at month 0: 1,200 -> 310 - 1,200 / 1,250 x 290 = 31.6. Cloud at month 12: 1,200 -> 31.6.
    assert c["local_points"].split()[0] == "100.0,31.6"
    assert c["cloud_points"].split()[0] == "100.0,310.0"
    assert c["cloud_points"].split()[-1] == "700.0,31.6"
    assert len(c["local_points"].split()) == 13
    # Break-even at month 12, the right edge: label to its left.
    assert c["break_even"] == {"x": 700.0, "label": "break-even: month 12", "label_x": 696.0, "label_y": 32,
                               "anchor": "end"}
    assert [t["label"] for t in c["x_ticks"]] == ["start", "year 1"]


def test_chart_marker_left_half_and_none():
    c = tco(flat(hardware=0), years=2, cloud_cny_per_month=30000)["chart"]
    # Month 1 of 24: x = 100 + 600 / 24 = 125; label to its right.
    assert (c["break_even"]["x"], c["break_even"]["anchor"], c["break_even"]["label_x"]) == (125.0, "start", 129.0)
    assert tco(flat(), years=1, ops_staff=0)["chart"]["break_even"] is None


def test_chart_with_nothing_to_draw():
    c = tco(flat(hardware=0), years=1, ops_staff=0)["chart"]
    assert [t["label"] for t in c["y_ticks"]] == ["0", "1"]


def test_the_documented_table_is_what_the_filter_computes():
    text = DOC.read_text(encoding="utf-8")
    snippet = re.search(r"<!-- table:snippet -->\n```python\n(.*?)```", text, re.S).group(1)
    table = re.search(r"<!-- table:begin -->\n(.*?)<!-- table:end -->", text, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, str(DOC), "exec"), {"__name__": "capacity_report_doc"})
    assert out.getvalue() == table
    assert "| h100_8x_sxm | 4,000,000 | 10,200 | 5,607,408 | 17,520,000 | -11,912,592 | 212.4 % | 16 |" in table


# --- The whole report, as the templates print it ------------------------------------------------

def test_report_of_the_defaults():
    r = tco("a100_2x")
    # Figures as in test_a100_2x_dev_test; per year: local 525,000 + 12y x 21,534.13, cloud 12y x 54,020.
    assert r["report"] == {
        "title": "Capacity and TCO report: 2 x NVIDIA A100 80GB, 128 GB memory (development and test)",
        "date": None,
        "summary": "1 server of 2 x NVIDIA A100 80GB, 128 GB memory (development and test), over 5 years: "
                   "local cost 1,817,048 CNY, avoided cloud spend 3,241,200 CNY, ROI 78.4 %. "
                   "From month 17 on, the local deployment has cost no more than the cloud spend it avoids.",
        "inputs": [
            ["Servers", "1", "default"],
            ["GPUs per server", "2", "profile a100_2x"],
            ["Hardware per server", "525,000 CNY", "profile a100_2x (midpoint of the guide's price range)"],
            ["Power per server", "1,200 W", "nominal (profile a100_2x)"],
            ["PUE", "1", "default"],
            ["Electricity price", "0.8 CNY/kWh", "default (deployment guide)"],
            ["Operations staff (full-time equivalents)", "1", "default"],
            ["Staff cost", "250,000 CNY per person-year", "default (deployment guide)"],
            ["Avoided cloud spend", "54,020 CNY per month", "2 GPUs x 730 h x 37 CNY per GPU-hour (profile)"],
            ["Horizon", "5 years (60 months)", "default (deployment guide)"],
        ],
        "monthly": [
            ["Electricity", "876 kWh", "701 CNY"],
            ["Operations staff", "", "20,833 CNY"],
            ["Local running cost", "", "21,534 CNY"],
            ["Avoided cloud spend", "", "54,020 CNY"],
        ],
        "totals": [
            ["Hardware", "525,000 CNY"],
            ["Electricity", "42,048 CNY"],
            ["Operations staff", "1,250,000 CNY"],
            ["Local cost", "1,817,048 CNY"],
            ["Avoided cloud spend", "3,241,200 CNY"],
            ["TCO (local cost - avoided cloud spend)", "-1,424,152 CNY"],
            ["ROI ((avoided cloud spend - local cost) / local cost)", "78.4 %"],
            ["Break-even", "month 17"],
        ],
        # Year 1: 525,000 + 258,409.60 = 783,409.60 against 648,240.
        "years": [["1", "783,410", "648,240", "-135,170"], ["2", "1,041,819", "1,296,480", "254,661"],
                  ["3", "1,300,229", "1,944,720", "644,491"], ["4", "1,558,638", "2,592,960", "1,034,322"],
                  ["5", "1,817,048", "3,241,200", "1,424,152"]],
        "hosts": [],
    }


MEASURED = {
    "gpu-a": gpu_fact(*[500.5] * 8),  # 4,004 W + 4,600 W = 8,604 W
    "gpu-b": gpu_fact(*[600] * 8),  # 4,800 W + 4,600 W = 9,400 W
    "gpu-c": gpu_fact(reason="driver | not loaded"),
}


def test_report_with_every_figure_set_and_measured_servers():
    r = tco("h100_8x_sxm", hosts=["gpu-c", "gpu-b", "gpu-a"], gpu_facts=MEASURED, years=3, hardware_cny=3800000,
            pue=1.3, electricity_cny_per_kwh="0.65", ops_staff=2, ops_staff_cny_per_year=300000,
            cloud_cny_per_gpu_hour=45, date="2026-12-01")
    # Power: mean (8,604 + 9,400) / 2 = 9,002 W x 3 servers x 1.3 = 35,107.8 W; x 730 h = 25,628.694 kWh;
    # x 0.65 = 16,658.65 CNY. Staff 2 x 300,000 / 12 = 50,000. Cloud 24 GPUs x 730 h x 45 = 788,400.
    # 36 months: hardware 11,400,000 + electricity 599,711.44 + staff 1,800,000 = 13,799,711.44.
    # Break-even: 11,400,000 / (788,400 - 66,658.65) = 15.8, so month 16.
    assert r["report"] == {
        "title": "Capacity and TCO report: 8 x NVIDIA H100 SXM, 512 GB memory (large enterprise)",
        "date": "2026-12-01",
        "summary": "3 servers of 8 x NVIDIA H100 SXM, 512 GB memory (large enterprise), over 3 years: "
                   "local cost 13,799,711 CNY, avoided cloud spend 28,382,400 CNY, ROI 105.7 %. "
                   "From month 16 on, the local deployment has cost no more than the cloud spend it avoids.",
        "inputs": [
            ["Servers", "3", "hosts in the inventory group"],
            ["GPUs per server", "8", "profile h100_8x_sxm"],
            ["Hardware per server", "3,800,000 CNY", "set"],
            ["Power per server", "9,002 W",
             "measured on 2 of 3 servers (mean), GPUs read by gpu_facts plus 4,600 W for the rest"],
            ["PUE", "1.3", "set"],
            ["Electricity price", "0.65 CNY/kWh", "set"],
            ["Operations staff (full-time equivalents)", "2", "set"],
            ["Staff cost", "300,000 CNY per person-year", "set"],
            ["Avoided cloud spend", "788,400 CNY per month", "24 GPUs x 730 h x 45 CNY per GPU-hour (set)"],
            ["Horizon", "3 years (36 months)", "set"],
        ],
        "monthly": [
            ["Electricity", "25,629 kWh", "16,659 CNY"],
            ["Operations staff", "", "50,000 CNY"],
            ["Local running cost", "", "66,659 CNY"],
            ["Avoided cloud spend", "", "788,400 CNY"],
        ],
        "totals": [
            ["Hardware", "11,400,000 CNY"],
            ["Electricity", "599,711 CNY"],
            ["Operations staff", "1,800,000 CNY"],
            ["Local cost", "13,799,711 CNY"],
            ["Avoided cloud spend", "28,382,400 CNY"],
            ["TCO (local cost - avoided cloud spend)", "-14,582,689 CNY"],
            ["ROI ((avoided cloud spend - local cost) / local cost)", "105.7 %"],
            ["Break-even", "month 16"],
        ],
        "years": [["1", "12,199,904", "9,460,800", "-2,739,104"], ["2", "12,999,808", "18,921,600", "5,921,792"],
                  ["3", "13,799,711", "28,382,400", "14,582,689"]],
        # The reason goes into a Markdown table: no "|" in it.
        "hosts": [["gpu-a", "8", "4,004", "measured"], ["gpu-b", "8", "4,800", "measured"],
                  ["gpu-c", "0", "-", "driver / not loaded"]],
    }
    assert (r["power"]["facility_watts"], r["power"]["kwh_per_month"], r["monthly"]["electricity_cny"]) == (
        35107.8, 25628.69, 16658.65)
    assert r["totals"]["local_cny"] == 13799711.44 and r["roi"] == 1.0567 and r["break_even_month"] == 16


def test_report_of_a_custom_profile_that_never_breaks_even():
    # The profile has no name: "custom". 2 servers x 500 W = 1 kW; 730 kWh x 0.8 = 584 CNY a month.
    # Local 2 x 1,200 + 24 x 584 = 16,416; cloud 24 x 150 = 3,600; ROI = -12,816 / 16,416 = -78.07 %.
    prof = {k: v for k, v in flat().items() if k != "name"}
    r = tco(prof, years=2, nodes=2, node_watts=500, cloud_cny_per_month=150, ops_staff=0)
    assert r["profile"] == {"name": "custom", "label": "test server", "gpus": 1}
    report = r["report"]
    assert report["summary"] == (
        "2 servers of test server, over 2 years: local cost 16,416 CNY, avoided cloud spend 3,600 CNY, ROI -78.1 %. "
        "Over 2 years the local deployment does not cost less than the cloud spend it avoids.")
    assert report["inputs"] == [
        ["Servers", "2", "set"],
        ["GPUs per server", "1", "profile custom"],
        ["Hardware per server", "1,200 CNY", "profile custom"],
        ["Power per server", "500 W", "set"],
        ["PUE", "1", "default"],
        ["Electricity price", "0.8 CNY/kWh", "default (deployment guide)"],
        ["Operations staff (full-time equivalents)", "0", "set"],
        ["Staff cost", "250,000 CNY per person-year", "default (deployment guide)"],
        ["Avoided cloud spend", "150 CNY per month", "set"],
        ["Horizon", "2 years (24 months)", "set"],
    ]
    assert report["totals"][5:] == [["TCO (local cost - avoided cloud spend)", "12,816 CNY"],
                                    ["ROI ((avoided cloud spend - local cost) / local cost)", "-78.1 %"],
                                    ["Break-even", "not within 2 years"]]
    assert report["years"] == [["1", "9,408", "1,800", "-7,608"], ["2", "16,416", "3,600", "-12,816"]]


def test_summary_without_local_cost_has_no_roi():
    r = tco(flat(hardware=0), years=2, ops_staff=0, cloud_cny_per_month=10)
    assert r["report"]["summary"] == (
        "1 server of test server, over 2 years: local cost 0 CNY, avoided cloud spend 240 CNY, ROI n/a. "
        "From month 1 on, the local deployment has cost no more than the cloud spend it avoids.")


def test_cloud_estimate_counts_the_gpus_of_every_server():
    rows = {row[0]: row[1:] for row in tco("h100_4x", nodes=3)["report"]["inputs"]}
    # 4 GPUs x 3 servers = 12 GPUs; 12 x 730 x 50 = 438,000.
    assert rows["Avoided cloud spend"] == ["438,000 CNY per month", "12 GPUs x 730 h x 50 CNY per GPU-hour (profile)"]
    assert rows["Servers"] == ["3", "set"]


# --- Power readings -------------------------------------------------------------------------------

def test_a_draw_of_zero_or_below_one_watt_is_a_reading():
    r = tco(flat(), hosts=["gpu-a"], gpu_facts={"gpu-a": gpu_fact(0, 0.5)})
    assert r["power"]["hosts"] == [{"host": "gpu-a", "gpus": 2, "gpu_watts": 0.5, "node_watts": 0.5,
                                    "measured": True, "reason": None}]
    assert r["power"]["basis"] == "measured on 1 of 1 servers (mean), GPUs read by gpu_facts plus 0 W for the rest"


@pytest.mark.parametrize("fact, reason", [
    (gpu_fact(0, 0.5, None), "1 of 3 GPUs did not report their power draw"),
    (gpu_fact(-1, 300, "n/a"), "2 of 3 GPUs did not report their power draw"),
    ({"gpus": ["GPU 0", {"index": 1}]}, "2 of 2 GPUs did not report their power draw"),
    ({"gpus": []}, "no GPUs found"),
    ({"gpus": [], "reason": ""}, "no GPUs found"),
    ({"gpus": [], "reason": "NVML | driver mismatch"}, "NVML / driver mismatch"),
])
def test_a_server_without_a_full_reading_says_why(fact, reason):
    r = tco(flat(), hosts=["gpu-a"], gpu_facts={"gpu-a": fact})
    assert [(h["measured"], h["reason"]) for h in r["power"]["hosts"]] == [(False, reason)]
    assert r["report"]["hosts"] == [["gpu-a", str(len(fact["gpus"])), "-", reason]]


def test_host_figures_are_rounded_to_plain_numbers():
    # 3 x 100.333 W = 300.999 W; node 300.999 + 4,600 W = 4,900.999 W.
    r = tco("h100_8x_sxm", hosts=["gpu-a"], gpu_facts={"gpu-a": gpu_fact(100.333, 100.333, 100.333)})
    host = r["power"]["hosts"][0]
    assert (host["gpu_watts"], host["node_watts"]) == (301.0, 4901.0)
    assert type(host["gpu_watts"]) is float and type(host["node_watts"]) is float  # pylint: disable=unidiomatic-typecheck


def test_the_malformed_gpu_fact_is_shown():
    with pytest.raises(TcoError) as err:
        tco("a100_2x", hosts=["gpu-a"], gpu_facts={"gpu-a": "80 W"})
    assert str(err.value) == (
        "gpu_facts[gpu-a]: must be the gpu facts of onprem.deepseek.gpu_facts (a dict with gpus), not '80 W'")
    with pytest.raises(TcoError) as err:
        tco("a100_2x", hosts=["gpu-a"], gpu_facts={"gpu-a": {"gpus": None}})
    assert str(err.value) == (
        "gpu_facts[gpu-a]: must be the gpu facts of onprem.deepseek.gpu_facts (a dict with gpus), not {'gpus': None}")


# --- Messages in full ---------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"variable_prefix": 5}, "variable_prefix: must be a string, not 5"),
    ({"hosts": "gpu-a"}, "hosts: must be a list of host names, not 'gpu-a'"),
    ({"hosts": ["gpu-a", 7]}, "hosts: must be a list of host names, not ['gpu-a', 7]"),
    ({"gpu_facts": ["gpu-a"]}, "gpu_facts: must be a dict of host name to gpu facts, not ['gpu-a']"),
    ({"hosts": 1, "gpu_facts": 2, "variable_prefix": "r_"},
     "r_hosts: must be a list of host names, not 1; r_gpu_facts: must be a dict of host name to gpu facts, not 2"),
])
def test_other_inputs_are_named_with_their_value(options, message):
    with pytest.raises(TcoError) as err:
        tco("a100_2x", **options)
    assert str(err.value) == message


KNOWN = "label, gpus, hardware_cny, gpu_watts, other_watts, cloud_cny_per_gpu_hour, name"


@pytest.mark.parametrize("profile, message", [
    (dict({k: v for k, v in flat().items() if k not in ("gpu_watts", "other_watts")}, cores=64, ram=512),
     "profile: unknown keys cores, ram (known: %s). missing keys gpu_watts, other_watts." % KNOWN),
    (dict(flat(), label=None), "profile: missing keys label."),
    (dict(flat(), label="a\tb"), "profile.label: must be a non-empty line of text without |, not 'a\\tb'"),
    (dict(flat(), label=" "), "profile.label: must be a non-empty line of text without |, not ' '"),
    (dict(flat(), name="x\ny"), "profile.name: must be a non-empty line of text without |, not 'x\\ny'"),
    (dict(flat(), name=7), "profile.name: must be a non-empty line of text without |, not 7"),
])
def test_a_wrong_profile_is_refused_in_full(profile, message):
    with pytest.raises(TcoError) as err:
        tco(profile)
    assert str(err.value) == message


def test_a_label_may_hold_any_other_text():
    assert tco(dict(flat(), label="XL server (8 x GPU, 2 x CPU)"))["profile"]["label"] == "XL server (8 x GPU, 2 x CPU)"


# --- Chart ----------------------------------------------------------------------------------------

def test_chart_frame_of_the_defaults():
    c = tco("a100_2x")["chart"]
    frame = {k: v for k, v in c.items() if k not in ("local_points", "cloud_points")}
    # Highest 3,241,200: step the nice number above 648,240 (1,000,000); top 4,000,000.
    # y of 1,000,000: 310 - 290 / 4 = 237.5. Break-even at month 17 of 60: x = 100 + 17 x 10 = 270, left half.
    assert frame == {
        "width": 720, "height": 360, "left": 100, "right": 700, "top": 20, "bottom": 310,
        "y_label_x": 94, "x_label_y": 326,
        "legend": {"y": 350, "local_x": 100, "cloud_x": 400},
        "y_ticks": [{"y": 310.0, "label_y": 314.0, "label": "0"}, {"y": 237.5, "label_y": 241.5, "label": "1,000,000"},
                    {"y": 165.0, "label_y": 169.0, "label": "2,000,000"},
                    {"y": 92.5, "label_y": 96.5, "label": "3,000,000"},
                    {"y": 20.0, "label_y": 24.0, "label": "4,000,000"}],
        "x_ticks": [{"x": 100.0, "label": "start"}, {"x": 220.0, "label": "year 1"}, {"x": 340.0, "label": "year 2"},
                    {"x": 460.0, "label": "year 3"}, {"x": 580.0, "label": "year 4"}, {"x": 700.0, "label": "year 5"}],
        "break_even": {"x": 270.0, "label": "break-even: month 17", "label_x": 274.0, "label_y": 32, "anchor": "start"},
        "title": "Cumulative cost in CNY, month 0 to 60: local deployment against the cloud spend it avoids",
    }
    # The SVG prints whole user units as such.
    assert json.dumps(c["legend"]) == '{"y": 350, "local_x": 100, "cloud_x": 400}'
    # Local at month 0: 310 - 525,000 / 4,000,000 x 290 = 271.94; cloud at month 60: 310 - 234.99 = 75.01.
    assert c["local_points"].split()[0] == "100.0,271.9"
    assert c["cloud_points"].split()[-1] == "700.0,75.0"


def test_chart_points_are_rounded_to_a_tenth():
    # 7 years, 84 months: one month is 600 / 84 = 7.142857 units wide. Highest 8,400, step 2,000,
    # top 10,000: 100 CNY is 2.9 units high.
    c = tco(flat(), years=7, ops_staff=0, cloud_cny_per_month=100)["chart"]
    assert c["cloud_points"].split()[:2] == ["100.0,310.0", "107.1,307.1"]
    assert len(c["cloud_points"].split()) == 85


@pytest.mark.parametrize("highest, labels", [
    # step: the smallest of 1, 2, 2.5, 5 x 10^k at least a fifth of the highest value
    (500, ["0", "100", "200", "300", "400", "500"]),
    (1250, ["0", "250", "500", "750", "1,000", "1,250"]),
    (2000, ["0", "500", "1,000", "1,500", "2,000"]),
    (3500, ["0", "1,000", "2,000", "3,000", "4,000"]),
    (1320, ["0", "500", "1,000", "1,500"]),
])
def test_chart_steps(highest, labels):
    # The highest value is the last local one, or the last cloud one.
    by_hardware = tco(flat(hardware=highest), years=1, ops_staff=0)["chart"]
    by_staff = tco(flat(hardware=0), years=1, ops_staff=1, ops_staff_cny_per_year=highest)["chart"]
    by_cloud = tco(flat(hardware=0), years=1, ops_staff=0, cloud_cny_per_month=Fraction(highest, 12))["chart"]
    for chart in (by_hardware, by_staff, by_cloud):
        assert [t["label"] for t in chart["y_ticks"]] == labels


def test_chart_steps_below_one():
    # Highest 2: step 0.5, five ticks 72.5 units apart.
    c = tco(flat(hardware=2), years=1, ops_staff=0)["chart"]
    assert [t["y"] for t in c["y_ticks"]] == [310.0, 237.5, 165.0, 92.5, 20.0]


@pytest.mark.parametrize("month, x, anchor, label_x", [
    (5, 350.0, "start", 354.0),
    (6, 400.0, "start", 404.0),  # the middle: still room on the right
    (7, 450.0, "end", 446.0),
])
def test_break_even_label_side(month, x, anchor, label_x):
    c = tco(flat(hardware=100 * month), years=1, ops_staff=0, cloud_cny_per_month=100)["chart"]
    assert c["break_even"] == {"x": x, "label": "break-even: month %d" % month, "label_x": label_x, "label_y": 32,
                               "anchor": anchor}


def test_a_one_year_horizon_reads_in_the_singular():
    one = tco("a100_2x", years=1)
    assert one["break_even_month"] is None
    assert ", over 1 year: local cost " in one["report"]["summary"]
    assert one["report"]["summary"].endswith(" Over 1 year the local deployment does not cost less than the cloud "
                                             "spend it avoids.")
    assert ", over 2 years: " in tco("a100_2x", years=2)["report"]["summary"]
