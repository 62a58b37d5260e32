"""The serving guard: a host stops a unit only while a host outside its batch runs the same unit."""
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.deepseek.plugins.filter import serving_guard as plugin
from ansible_collections.onprem.deepseek.plugins.module_utils._serving_guard import (
    ServingGuardError,
    serving_guard,
)

R1 = "deepseek-inference-r1.service"
V3 = "deepseek-inference-v3.service"


def test_a_unit_another_host_runs_may_stop():
    assert serving_guard([R1], ["n2", "n3"], {"n2": [R1], "n3": []}) == {
        "unserved": [], "served_by": {R1: ["n2"]}, "unknown": []}


def test_the_last_host_of_one_model_is_kept_even_when_others_serve_another():
    # n2 serves only V3: stopping R1 here would take R1 down, although inference as a whole goes on.
    assert serving_guard([R1, V3], ["n2"], {"n2": [V3]}) == {
        "unserved": [R1], "served_by": {V3: ["n2"]}, "unknown": []}


def test_hosts_whose_units_were_not_read_serve_nothing_and_are_named():
    assert serving_guard([R1], ["n3", "n2"], {"n2": []}) == {"unserved": [R1], "served_by": {}, "unknown": ["n3"]}


def test_nothing_to_stop_needs_nobody():
    assert serving_guard([], [], {}) == {"unserved": [], "served_by": {}, "unknown": []}


def test_each_unit_and_host_once_sorted():
    result = serving_guard([V3, R1, V3], ["n3", "n2", "n3"], {"n3": [R1, R1], "n2": [R1]})
    assert result == {"unserved": [V3], "served_by": {R1: ["n2", "n3"]}, "unknown": []}


def test_only_hosts_outside_the_batch_count():
    # n1 is in the batch (not in others): its units do not keep R1 up.
    assert serving_guard([R1], ["n2"], {"n1": [R1], "n2": []})["unserved"] == [R1]


@pytest.mark.parametrize("args, text", [
    (("x", [], {}), "stopping must be a list of names, not 'x'"),
    (([1], [], {}), "stopping must be a list of names, not [1]"),
    (([], "n2", {}), "others must be a list of names, not 'n2'"),
    (([], ["n2"], []), "serving must be a mapping of host to units, not []"),
    (([], ["n2"], {"n2": "unit"}), "serving[n2] must be a list of names, not 'unit'"),
])
def test_wrong_shapes_are_refused(args, text):
    with pytest.raises(ServingGuardError) as err:
        serving_guard(*args)
    assert str(err.value) == text


def test_filter_wires_and_names_itself_in_errors():
    assert plugin.FilterModule().filters()["serving_guard"] is plugin.serving_guard
    assert plugin.serving_guard([R1], ["n2"], {"n2": [R1]})["unserved"] == []
    with pytest.raises(AnsibleFilterError, match=r"^serving_guard: others must be a list of names"):
        plugin.serving_guard([R1], None, {})
