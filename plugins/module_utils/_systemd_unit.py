# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Writing values into systemd unit files safely, and checking systemd's value formats.

A unit file is line based and systemd expands specifiers (``%h``, ``%n``, ...) in most settings
and ``$VAR`` in command lines. A value that carries a newline becomes a new setting (for example
``ExecStartPre=+...``, run as root); a ``%`` or ``$`` is expanded. The functions here refuse
newlines and other control characters and escape what systemd would otherwise interpret.
See systemd.unit(5) "Specifiers", systemd.service(5) "Command lines", systemd.exec(5) "Environment".
"""

from __future__ import annotations

import re

# Characters a command-line word may hold without quoting (systemd splits on whitespace and
# interprets quotes and backslashes).
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./$-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# MemoryMax= and friends: bytes with an optional base-1024 suffix, a percentage of the
# physical memory (up to two decimals), or infinity.
_SIZE = re.compile(r"^(?:(?P<bytes>[0-9]+(?:\.[0-9]+)?)(?P<suffix>[KMGTPE]?)|(?P<percent>[0-9]{1,3}(?:\.[0-9]{1,2})?)%|infinity)$")


class UnitValueError(ValueError):
    """A value that cannot be written into a unit file."""


def _text(value, what):
    if isinstance(value, bool) or value is None:
        raise UnitValueError("%s: %r is not a string or number" % (what, value))
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise UnitValueError("%s: %r is not a string or number" % (what, type(value).__name__))
    if _CONTROL.search(value):
        raise UnitValueError("%s: %r holds a newline or another control character" % (what, value))
    return value


def escape_specifiers(value, what="value"):
    """``value`` for a unit setting that expands specifiers: ``%`` doubled; no control characters."""
    return _text(value, what).replace("%", "%%")


def exec_word(value, what="command-line word"):
    """One word of ``ExecStart=``: specifiers and ``$`` escaped, quoted when it must be."""
    text = _text(value, what)
    if text == "":
        return '""'
    escaped = text.replace("%", "%%").replace("$", "$$")
    if _PLAIN_WORD.match(text):
        return escaped
    return '"%s"' % escaped.replace("\\", "\\\\").replace('"', '\\"')


def exec_line(argv, what="command line"):
    """``ExecStart=`` value for ``argv`` (the first word must be an absolute path)."""
    words = list(argv)
    if not words or not str(words[0]).startswith("/"):
        raise UnitValueError("%s: the program must be an absolute path, not %r" % (what, words[:1]))
    return " ".join(exec_word(word, what) for word in words)


def environment_assignment(name, value, what="environment"):
    """``Environment=`` value ``"NAME=value"``: a valid name, the value quoted and escaped."""
    if not isinstance(name, str) or not ENV_NAME.match(name):
        raise UnitValueError("%s: %r is not a variable name ([A-Za-z_][A-Za-z0-9_]*)" % (what, name))
    text = _text(value, "%s: the value of %s" % (what, name))
    return '"%s=%s"' % (name, text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%"))


def memory_size(value, what="size"):
    """Check a ``MemoryMax=`` value (``6G``, ``95%``, ``infinity``, bytes) and return it as a string."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    match = _SIZE.match(text) if text is not None else None
    if match is None or (match.group("percent") and float(match.group("percent")) > 100):
        raise UnitValueError(
            "%s: %r is not a systemd size (bytes with an optional K, M, G, T, P or E suffix, "
            "a percentage up to 100%%, or infinity)" % (what, value))
    if match.group("bytes") is not None and float(match.group("bytes")) == 0:
        raise UnitValueError("%s: %r would leave no memory" % (what, value))
    return text
