"""Unpack the collections named in requirements.yml from an `ansible` package wheel.

Usage: unpack_collections.py WHEEL REQUIREMENTS_YML DEST

Fails when a collection is missing from the wheel or its version is outside the range
that requirements.yml allows, so a wrong pin is caught here and not in a playbook.

Then links the collections vendored for tests under tests/awx/vendor_collections (awx.awx, which
no reachable registry offers: an unmodified copy of the modules examples/awx uses) into DEST,
unless DEST has the real one, so examples/awx's playbooks are syntax-checked and linted against
the real module options. They are no dependency of the collection (galaxy.yml).
"""
import json
import shutil
import sys
import zipfile
from pathlib import Path

import yaml
from ansible.module_utils.compat.version import LooseVersion


def version_ok(version, spec):
    for clause in (c.strip() for c in spec.split(",") if c.strip()):
        for op in (">=", "<=", "==", "!=", ">", "<"):
            if clause.startswith(op):
                want = LooseVersion(clause[len(op):].strip())
                have = LooseVersion(version)
                ok = {
                    ">=": have >= want, "<=": have <= want, "==": have == want,
                    "!=": have != want, ">": have > want, "<": have < want,
                }[op]
                if not ok:
                    return False
                break
        else:
            raise ValueError(f"unsupported version clause {clause!r}")
    return True


def main(wheel, requirements, dest):
    wanted = yaml.safe_load(Path(requirements).read_text())["collections"]
    dest = Path(dest)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        for item in wanted:
            ns, name = item["name"].split(".")
            prefix = f"ansible_collections/{ns}/{name}/"
            manifest = json.loads(zf.read(prefix + "MANIFEST.json"))
            version = manifest["collection_info"]["version"]
            if not version_ok(version, item.get("version", "*").replace("*", "")):
                sys.exit(f"{item['name']} {version} in {wheel} is outside {item['version']} (requirements.yml)")
            target = dest / "ansible_collections" / ns / name
            shutil.rmtree(target, ignore_errors=True)
            for member in names:
                if member.startswith(prefix) and not member.endswith("/"):
                    zf.extract(member, dest)
            print(f"unpacked {item['name']} {version}")
    link_vendored(dest)


def link_vendored(dest):
    vendored = Path(__file__).resolve().parents[1] / "tests" / "awx" / "vendor_collections" / "ansible_collections"
    for collection in sorted(vendored.glob("*/*")):
        target = dest / "ansible_collections" / collection.parent.name / collection.name
        if target.is_symlink() or not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            target.symlink_to(collection)
            print(f"linked vendored {collection.parent.name}.{collection.name}")


if __name__ == "__main__":
    main(*sys.argv[1:])
