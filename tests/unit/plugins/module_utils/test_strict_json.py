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


@pytest.mark.parametrize("text,message", [
    ('{"a": 1, "a": 2}', "duplicate field 'a'"),
    ('{"x": {"b": 1, "c": 2, "b": 1}}', "duplicate field 'b'"),
    ('{"a": NaN}', "NaN is not JSON"),
    ("[Infinity]", "Infinity is not JSON"),
    ("-Infinity", "-Infinity is not JSON"),
])
def test_the_refusal_names_the_field_or_the_constant(text, message):
    with pytest.raises(ValueError) as raised:
        strict_loads(text)
    assert str(raised.value) == message


def test_every_value_of_an_object_is_kept():
    assert strict_loads('{"a": 1, "b": "x", "c": {"d": null}}') == {"a": 1, "b": "x", "c": {"d": None}}
