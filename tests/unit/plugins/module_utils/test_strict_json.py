import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._strict_json import strict_loads


def test_plain_json_is_read():
    assert strict_loads('{"a": 1, "b": [1.5, null, true], "c": {"a": 2}}') == {"a": 1, "b": [1.5, None, True], "c": {"a": 2}}


@pytest.mark.parametrize("text", ['{"a": 1, "a": 2}', '{"x": {"b": 1, "b": 1}}', '[{"k": 0, "k": 0}]'])
def test_a_repeated_field_at_any_depth_is_refused(text):
    with pytest.raises(ValueError, match="duplicate field"):
        strict_loads(text)


@pytest.mark.parametrize("text", ['{"a": NaN}', "[Infinity]", "-Infinity"])
def test_nan_and_infinities_are_refused(text):
    with pytest.raises(ValueError, match="is not JSON"):
        strict_loads(text)


def test_broken_json_is_a_value_error():
    with pytest.raises(ValueError):
        strict_loads('{"a": ')
