#!/usr/bin/env python3
"""Build the one-file host commands from the collection's own plugins/module_utils (one
implementation for the modules and the hosts):

- roles/hsm/files/onprem_keywrap.py, the library of the keywrap command (boot-time unlock of the
  storage tiers), from the _pkcs11_* module_utils;
- roles/gateway/files/onprem_deepseek_audit.py, the onprem-deepseek-audit command (the gateway's
  audit chain), from _strict_json, _audit_chain, _audit_follow and the _pkcs11_* module_utils it uses;
- roles/remediation/files/onprem_deepseek_remediation.py, the receiver of the guarded engine restart
  on HostMemoryHigh, from _remediation and _remediation_server;
- roles/dr/files/onprem_deepseek_dr_entry.py, the gateways' health check that announces the global
  entry point, from _textfile, _dr_entry and _dr_entry_health.
- roles/dr/files/onprem_deepseek_dr_replication.py, the gateways' audit replication heartbeat and lag
  metrics, from _textfile, _dr_report, _dr_replication and _dr_replication_agent.

    tools/build_keywrap.py           write the files
    tools/build_keywrap.py --check   exit 1 when a file is not what the sources build (a unit test runs this)
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUTURE = "from __future__ import annotations\n"
# Imports of one source from another: the names are defined above them in the built file.
SIBLING_IMPORT = re.compile(
    r"^from ansible_collections\.onprem\.deepseek\.plugins\.module_utils\._\w+ import (?:\([^)]*\)|[^\n]*)\n", re.M)

LICENSE = '''# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
'''


class Target:
    def __init__(self, path, sources, doc, footer=""):
        self.path, self.sources, self.doc, self.footer = ROOT / path, sources, doc, footer

    def header(self):
        return (LICENSE + "# Built by tools/build_keywrap.py from plugins/module_utils/{%s}:\n# edit those, then run it.\n"
                '"""%s"""\n\n' % (",".join(self.sources), self.doc))


PKCS11 = ("_pkcs11_spec.py", "_pkcs11_der.py", "_pkcs11_token.py")
TARGETS = (
    Target("roles/hsm/files/onprem_keywrap.py", PKCS11 + ("_pkcs11_wrap.py", "_pkcs11_wrap_command.py"),
           "The library of the hsm role's keywrap command: the PKCS#11 and wrap module_utils in one file."),
    Target("roles/gateway/files/onprem_deepseek_audit.py", PKCS11 + ("_strict_json.py", "_audit_chain.py", "_audit_follow.py"),
           "onprem-deepseek-audit: follow the gateway's raw audit log into a signed hash chain, verify it.\n\n"
           "    python3 onprem_deepseek_audit.py {follow,verify,public-key} --help\n",
           '\n\nif __name__ == "__main__":\n    sys.exit(main())\n'),
    Target("roles/remediation/files/onprem_deepseek_remediation.py", ("_remediation.py", "_remediation_server.py"),
           "onprem-deepseek-remediation: Alertmanager's webhook over mutual TLS to a guarded engine restart.\n\n"
           "    python3 onprem_deepseek_remediation.py {serve,check} --config FILE\n",
           '\n\nif __name__ == "__main__":\n    sys.exit(main())\n'),
    Target("roles/dr/files/onprem_deepseek_dr_entry.py", ("_textfile.py", "_dr_entry.py", "_dr_entry_health.py"),
           "onprem-deepseek-dr-entry: announce the global entry point while the local gateway answers.\n\n"
           "    python3 onprem_deepseek_dr_entry.py {serve,check,withdraw} --config FILE\n",
           '\n\nif __name__ == "__main__":\n    sys.exit(main())\n'),
    Target("roles/dr/files/onprem_deepseek_dr_replication.py", ("_textfile.py", "_dr_report.py", "_dr_replication.py",
                                                                "_dr_replication_agent.py"),
           "onprem-deepseek-dr-replication: the audit replication's heartbeat and lag metrics on a gateway.\n\n"
           "    python3 onprem_deepseek_dr_replication.py {serve,check} --config FILE\n",
           '\n\nif __name__ == "__main__":\n    sys.exit(main())\n'),
)


def body(name):
    text = (ROOT / "plugins" / "module_utils" / name).read_text()
    if FUTURE not in text:
        raise SystemExit("build_keywrap: %s has no %r line" % (name, FUTURE.strip()))
    # Everything after the future import: the license header and docstring stay in the source.
    rest = text.split(FUTURE, 1)[1]
    return SIBLING_IMPORT.sub("", rest)


def _bindings(tree):
    """Top-level names a module binds: {name: origin}, origin an import's source or None for a definition."""
    found = {}

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[node.name] = None
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            found[name.id] = None
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    found[alias.asname or alias.name.split(".")[0]] = "import " + alias.name
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    found[alias.asname or alias.name] = "from %s import %s" % (node.module, alias.name)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", ()):
                    visit(handler.body)
                visit(getattr(node, "finalbody", ()))
    visit(tree.body)
    return found


def clashes(named_bodies):
    """Names that two sources bind differently: one would replace the other in the built file."""
    seen, problems = {}, []
    for name, text in named_bodies:
        for symbol, origin in sorted(_bindings(ast.parse(text)).items()):
            if symbol in seen and (origin is None or seen[symbol][1] != origin):
                problems.append("%s binds %s, already bound by %s" % (name, symbol, seen[symbol][0]))
            seen.setdefault(symbol, (name, origin))
    return problems


def build(target):
    bodies = [(name, body(name)) for name in target.sources]
    problems = clashes(bodies)
    if problems:
        raise SystemExit("build_keywrap: %s: %s" % (target.path.relative_to(ROOT), "; ".join(problems)))
    return target.header() + FUTURE + "\n".join("\n# ---- %s\n%s" % item for item in bodies) + target.footer


def main(argv):
    if argv not in ([], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    stale = 0
    for target in TARGETS:
        text = build(target)
        if argv == ["--check"]:
            if not target.path.exists() or target.path.read_text() != text:
                print("build_keywrap: %s is stale; run tools/build_keywrap.py" % target.path.relative_to(ROOT),
                      file=sys.stderr)
                stale = 1
            continue
        target.path.parent.mkdir(parents=True, exist_ok=True)
        target.path.write_text(text)
    return stale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
