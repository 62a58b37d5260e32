"""Values written into systemd unit files: escaped, or refused when they would change the unit."""
import shlex

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _systemd_unit as su
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


# Each refusal whole, with the default name of what was refused when the caller gives none.
@pytest.mark.parametrize("call, message", [
    (lambda: su.escape_specifiers(None), "value: None is not a string or number"),
    (lambda: su.exec_word(None), "command-line word: None is not a string or number"),
    (lambda: su.exec_word(["a"]), "command-line word: 'list' is not a string or number"),
    (lambda: su.exec_line(["bin/vllm"]), "command line: the program must be an absolute path, not ['bin/vllm']"),
    (lambda: su.exec_line([]), "command line: the program must be an absolute path, not []"),
    (lambda: su.exec_line(["/usr/bin/vllm", "a\nb"]), "command line: 'a\\nb' holds a newline or another control character"),
    (lambda: su.environment_assignment("1X", "v"), "environment: '1X' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
    (lambda: su.environment_assignment("X", None), "environment: the value of X: None is not a string or number"),
    (lambda: su.memory_size("6Q"), "size: '6Q' is not a systemd size (bytes with an optional K, M, G, T, P or E "
                                   "suffix, a percentage up to 100%, or infinity)"),
])
def test_refusals_whole(call, message):
    with pytest.raises(su.UnitValueError) as caught:
        call()
    assert str(caught.value) == message


def test_a_path_program_names_only_the_first_word():
    with pytest.raises(su.UnitValueError) as caught:
        su.exec_line(["vllm", "serve"], "inference_engine_command")
    assert str(caught.value).endswith("not ['vllm']")
