#!/usr/bin/env python3
"""Build roles/hsm/files/onprem_keywrap.py, the one-file library of the host-side keywrap command,
from the collection's own plugins/module_utils/_pkcs11_*.py (one implementation for the PKCS#11
modules and the boot-time unlock of the storage tiers).

    tools/build_keywrap.py           write the file
    tools/build_keywrap.py --check   exit 1 when the file is not what the sources build (a unit test runs this)
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("_pkcs11_spec.py", "_pkcs11_der.py", "_pkcs11_token.py", "_pkcs11_wrap.py", "_pkcs11_wrap_command.py")
TARGET = ROOT / "roles" / "hsm" / "files" / "onprem_keywrap.py"
FUTURE = "from __future__ import annotations\n"
# Imports of one source from another: the names are defined above them in the built file.
SIBLING_IMPORT = re.compile(
    r"^from ansible_collections\.onprem\.deepseek\.plugins\.module_utils\._pkcs11\w* import (?:\([^)]*\)|[^\n]*)\n", re.M)

HEADER = '''# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Built by tools/build_keywrap.py from plugins/module_utils/{%s}:\n# edit those, then run it.
"""The library of the hsm role's keywrap command: the PKCS#11 and wrap module_utils in one file."""

''' % ",".join(SOURCES)


def body(name):
    text = (ROOT / "plugins" / "module_utils" / name).read_text()
    if FUTURE not in text:
        raise SystemExit("build_keywrap: %s has no %r line" % (name, FUTURE.strip()))
    # Everything after the future import: the license header and docstring stay in the source.
    rest = text.split(FUTURE, 1)[1]
    return SIBLING_IMPORT.sub("", rest)


def build():
    return HEADER + FUTURE + "\n".join("\n# ---- %s\n%s" % (name, body(name)) for name in SOURCES)


def main(argv):
    text = build()
    if argv == ["--check"]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("build_keywrap: %s is stale; run tools/build_keywrap.py" % TARGET.relative_to(ROOT), file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
