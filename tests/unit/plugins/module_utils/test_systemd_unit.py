"""Values written into systemd unit files: escaped, or refused when they would change the unit."""
import shlex

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._systemd_unit import (
    UnitValueError,
    environment_assignment,
    escape_specifiers,
    exec_line,
    exec_word,
    memory_size,
)


@pytest.mark.parametrize("word, written", [
    ("/opt/deepseek/vllm-venv/bin/python", "/opt/deepseek/vllm-venv/bin/python"),
    ("--config", "--config"),
    ("10.0.1.11:8000", "10.0.1.11:8000"),
    ("50%", "50%%"),                       # a specifier otherwise
    ("$HOME", "$$HOME"),                   # a variable otherwise
    ("two words", '"two words"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("", '""'),
    (8000, "8000"),
])
def test_exec_word_escapes_specifiers_variables_and_quotes(word, written):
    assert exec_word(word) == written


@pytest.mark.parametrize("value", ["a\nExecStartPre=+/bin/touch /tmp/x", "a\rb", "nul\x00", "tab\there", None, True, ["x"]])
def test_control_characters_and_non_scalars_are_refused(value):
    with pytest.raises(UnitValueError):
        exec_word(value)
    with pytest.raises(UnitValueError):
        environment_assignment("NAME", value)
    with pytest.raises(UnitValueError):
        escape_specifiers(value)


def test_exec_line_needs_an_absolute_program_and_splits_back_to_the_argv():
    argv = ["/usr/bin/prog", "--name", "a b", "50%"]
    line = exec_line(argv)
    assert line == '/usr/bin/prog --name "a b" 50%%'
    assert shlex.split(line.replace("%%", "%")) == argv
    for bad in ([], ["prog", "--x"], [None]):
        with pytest.raises(UnitValueError):
            exec_line(bad)


def test_environment_assignment_quotes_and_escapes_the_value():
    assert environment_assignment("VLLM_CPU_KVCACHE_SPACE", 1) == '"VLLM_CPU_KVCACHE_SPACE=1"'
    assert environment_assignment("A", 'x "y" 5% \\') == '"A=x \\"y\\" 5%% \\\\"'
    for name in ("A\nExecStartPre=+/bin/touch /tmp/x", "1A", "A-B", "A B", "", 5):
        with pytest.raises(UnitValueError, match="not a variable name"):
            environment_assignment(name, "1")


def test_escape_specifiers():
    assert escape_specifiers("deepseek 100%") == "deepseek 100%%"


@pytest.mark.parametrize("value", ["95%", "100%", "0.5%", "6G", "6442450944", "1.5T", "512M", "infinity", 1024])
def test_memory_size_accepts_systemd_sizes(value):
    assert memory_size(value) == str(value)


@pytest.mark.parametrize("value", ["lots", "101%", "0", "0G", "-1G", "6 G", "6g", "6GiB", "95%\nExecStartPre=+/x", "", None, True, 6.5])
def test_memory_size_refuses_everything_else(value):
    with pytest.raises(UnitValueError, match="inference_memory_max"):
        memory_size(value, "inference_memory_max")
