"""The inference_plan filter: wiring, documentation, and errors as AnsibleFilterError."""
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter import inference_plan as plugin
from ansible_collections.onprem.deepseek.plugins.module_utils._inference_plan import _OPTION_NAMES

H200 = {"gpu_model": "NVIDIA H200", "gpu_memory_gib": 140.4, "gpus_per_node": 8, "nodes": 1}


def test_filter_is_registered():
    assert plugin.FilterModule().filters()["inference_plan"] is plugin.inference_plan


def test_filter_plans():
    result = plugin.inference_plan("deepseek-r1", H200, max_model_len="32768")
    assert result["fits"] is True
    assert (result["tensor_parallel_size"], result["max_model_len"]) == (8, 32768)


def test_hardware_as_keyword():
    assert plugin.inference_plan("deepseek-v3", hardware=H200)["tensor_parallel_size"] == 8


@pytest.mark.parametrize("args, kwargs, field", [
    (("deepseek-r9", H200), {}, "model"),
    (("deepseek-r1",), {}, "hardware"),
    (("deepseek-r1", dict(H200, gpus_per_node="many")), {}, "hardware.gpus_per_node"),
    (("deepseek-r1", H200), {"concurrency": "lots"}, "concurrency"),
    (("deepseek-r1", H200), {"max_len": 4096}, "max_len"),
])
def test_errors_are_filter_errors_naming_the_field(args, kwargs, field):
    with pytest.raises(AnsibleFilterError) as err:
        plugin.inference_plan(*args, **kwargs)
    assert field in str(err.value)
    assert str(err.value).startswith("inference_plan: ")


def test_documentation_matches_the_options():
    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc["name"] == "inference_plan"
    assert set(doc["options"]) - {"_input", "hardware"} == set(_OPTION_NAMES)
    assert doc["positional"] == "_input, hardware"
    returned = yaml.safe_load(plugin.RETURN)["_value"]["contains"]
    result = plugin.inference_plan("deepseek-r1", H200)
    assert set(returned) == set(result)
    for key, spec in returned.items():
        assert "sample" in spec and spec["returned"] == "always", key
    yaml.safe_load(plugin.EXAMPLES)
