"""The tco filter: wiring, documentation, and errors as AnsibleFilterError."""
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter import tco as plugin
from ansible_collections.onprem.deepseek.plugins.module_utils._tco import OPTION_NAMES


def test_filter_is_registered():
    assert plugin.FilterModule().filters()["tco"] is plugin.tco


def test_filter_computes():
    result = plugin.tco("h100_8x_sxm", years="5", variable_prefix="capacity_report_")
    assert (result["break_even_month"], result["roi"]) == (16, 2.1244)


@pytest.mark.parametrize("args, kwargs, text", [
    (("h100_9x",), {}, "tco: capacity_report_profile: must be one of"),
    (("h100_8x_sxm",), {"years": 0}, "tco: capacity_report_years: must be a whole number from 1 to 10, not 0"),
    (("h100_8x_sxm",), {"power": 5}, "tco: unknown options power (known: years, nodes,"),
])
def test_errors_are_filter_errors_naming_the_variable(args, kwargs, text):
    with pytest.raises(AnsibleFilterError) as err:
        plugin.tco(*args, variable_prefix="capacity_report_", **kwargs)
    assert str(err.value).startswith(text)


def test_documentation_matches_the_options_and_the_result():
    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc["name"] == "tco" and doc["positional"] == "_input"
    assert set(doc["options"]) - {"_input"} == set(OPTION_NAMES)
    returned = yaml.safe_load(plugin.RETURN)["_value"]["contains"]
    assert set(returned) == set(plugin.tco("a100_2x"))
    for key, spec in returned.items():
        assert "sample" in spec and spec["returned"] == "always", key
    yaml.safe_load(plugin.EXAMPLES)
