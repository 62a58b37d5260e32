# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON as the collection reads untrusted text (private to the collection): an object with a field
twice, or NaN/Infinity, is not JSON here. Two parsers could pick different values of a repeated
field (the gateway's Lua and Python, a hashed record and its reader)."""

from __future__ import annotations

import json


def unique_fields(pairs):
    """``object_pairs_hook`` that refuses a repeated field."""
    seen = {}
    for name, value in pairs:
        if name in seen:
            raise ValueError("duplicate field %r" % name)
        seen[name] = value
    return seen


def no_constant(name):
    """``parse_constant`` that refuses NaN and the infinities."""
    raise ValueError("%s is not JSON" % name)


def strict_loads(text):
    """``json.loads`` with both refusals; raises ValueError."""
    return json.loads(text, object_pairs_hook=unique_fields, parse_constant=no_constant)
