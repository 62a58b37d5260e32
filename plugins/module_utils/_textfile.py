# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Settings files read and files that other programs read while they change (standard library
only; built into the gateways' one-file commands with the code that uses it)."""

from __future__ import annotations

import json
import os
import tempfile


def write_atomically(path, text):
    """Readers see the old file or the new one, never a part. An empty path writes nothing."""
    if not path:
        return
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load_checked_json(path, check, error):
    """The JSON settings file ``path`` as ``check`` returns it; a fault is raised as ``error``
    (the exception class ``check`` raises) with the file's name in front."""
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise error("%s: %s" % (path, exc))
    try:
        return check(config)
    except error as exc:
        raise error("%s: %s" % (path, exc))
