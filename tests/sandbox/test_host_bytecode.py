"""The sandbox hosts' bytecode cache for zip imports (tools/onprem_sandbox/host_files), run here
in fresh interpreters that load it from a site directory the way the hosts' .pth file does."""
import hashlib
import importlib.util
import json
import marshal
import os
import stat
import subprocess
import sys
import types
import zipfile

import test_vm_spec
from onprem_sandbox import rootfs, spec

HOST_FILES = spec.HOST_FILES_DIR
SOURCE = "VALUE = 1\n\n\ndef where():\n    return where.__code__.co_filename\n\n\ndef fails():\n    raise RuntimeError('from the payload')\n"

# Loads the module from a site directory (.pth and all), points it at the test's cache, then
# imports "payload" from the zip and prints what the module says about itself.
PROBE = """
import json, site, sys, traceback, zipimport
site.addsitedir(sys.argv[1])
import onprem_sandbox_bytecode
onprem_sandbox_bytecode.CACHE_DIR = sys.argv[2]
sys.path.insert(0, sys.argv[3])
import payload
try:
    payload.fails()
except RuntimeError:
    tb = traceback.format_exc()
print(json.dumps({"value": payload.VALUE, "where": payload.where(), "traceback": tb,
                  "patched": getattr(zipimport, "_compile_source", None) is onprem_sandbox_bytecode.compile_source}))
"""


def site_dir(tmp_path):
    work = tmp_path / "image"
    (work / "usr/lib/python3.11").mkdir(parents=True)
    (work / "usr/lib/python3.11/os.py").write_text("")
    rootfs.install_bytecode_cache(work)
    return work / "usr/local/lib/python3.11/dist-packages"


def payload_zip(path, source=SOURCE):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("payload.py", source)
    return path


def probe(site, cache, zip_path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(site), str(cache), str(zip_path)],
                         check=True, capture_output=True, text=True, timeout=60)
    # Nothing on stderr: a .pth line that fails is printed at every interpreter start.
    assert out.stderr == ""
    return json.loads(out.stdout)


def cache_key(source):
    return hashlib.sha256(importlib.util.MAGIC_NUMBER + source.encode()).hexdigest()


def test_the_image_gets_the_module_its_pth_and_a_root_only_cache(tmp_path):
    site = site_dir(tmp_path)
    assert (site / "onprem_sandbox_bytecode.py").read_bytes() == (HOST_FILES / "onprem_sandbox_bytecode.py").read_bytes()
    assert (site / "onprem_sandbox_bytecode.pth").read_text() == "import onprem_sandbox_bytecode\n"
    # The directory the host file uses, made where the image will have it.
    assert rootfs.bytecode_cache_dir() == "/var/cache/onprem-sandbox-bytecode"
    cache = tmp_path / "image/var/cache/onprem-sandbox-bytecode"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_the_newest_interpreter_of_the_image_gets_it(tmp_path):
    for version in ("python3.9", "python3.11", "python3.10"):
        (tmp_path / "usr/lib" / version).mkdir(parents=True)
        (tmp_path / "usr/lib" / version / "os.py").write_text("")
    rootfs.install_bytecode_cache(tmp_path)
    assert [p.name for p in (tmp_path / "usr/local/lib").iterdir()] == ["python3.11"]


def test_an_image_without_python_is_refused(tmp_path):
    (tmp_path / "usr/lib/python3.11").mkdir(parents=True)  # no os.py: not an interpreter's library
    try:
        rootfs.install_bytecode_cache(tmp_path)
    except FileNotFoundError as exc:
        assert "no Python 3" in str(exc)
    else:
        raise AssertionError("expected FileNotFoundError")


def test_the_first_import_compiles_and_stores_the_second_reads_the_store(tmp_path):
    site, cache = site_dir(tmp_path), tmp_path / "cache"
    first = probe(site, cache, payload_zip(tmp_path / "one.zip"))
    assert first["patched"] and first["value"] == 1
    entry = cache / cache_key(SOURCE)
    assert sorted(os.listdir(cache)) == [entry.name]
    # Stored code that differs from the source shows the second import read the store.
    other = compile("VALUE = 2\n\n\ndef where():\n    return where.__code__.co_filename\n\n\n"
                    "def fails():\n    raise RuntimeError('stored')\n", "/old/place.zip/payload.py", "exec")
    entry.write_bytes(marshal.dumps(other))
    second = probe(site, cache, payload_zip(tmp_path / "two.zip"))
    assert second["value"] == 2
    # Every code object names the zip it came from this time, as a traceback shows it.
    assert second["where"] == str(tmp_path / "two.zip" / "payload.py")
    assert str(tmp_path / "two.zip" / "payload.py") in second["traceback"]
    assert "/old/place.zip" not in second["traceback"]


def test_another_source_or_interpreter_version_is_another_entry(tmp_path):
    assert cache_key(SOURCE) != cache_key(SOURCE.replace("1", "3"))
    site, cache = site_dir(tmp_path), tmp_path / "cache"
    probe(site, cache, payload_zip(tmp_path / "one.zip"))
    probe(site, cache, payload_zip(tmp_path / "three.zip", SOURCE.replace("VALUE = 1", "VALUE = 3")))
    assert len(os.listdir(cache)) == 2


def test_a_damaged_entry_falls_back_to_the_source(tmp_path):
    site, cache = site_dir(tmp_path), tmp_path / "cache"
    cache.mkdir()
    for damage in (b"", b"\x00garbage", marshal.dumps(42)):
        (cache / cache_key(SOURCE)).write_bytes(damage)
        assert probe(site, cache, payload_zip(tmp_path / "one.zip"))["value"] == 1


def test_a_cache_it_cannot_write_changes_nothing_but_speed(tmp_path):
    site = site_dir(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = probe(site, blocker / "cache", payload_zip(tmp_path / "one.zip"))
    assert result["value"] == 1 and result["where"] == str(tmp_path / "one.zip" / "payload.py")


def test_a_changed_host_file_changes_both_image_keys(tmp_path, monkeypatch):
    sandbox = spec.parse_inventory(test_vm_spec.inventory())
    before = [sandbox.rootfs_key("http://mirror.test/debian", kind) for kind in ("vm", "container")]
    (tmp_path / "onprem_sandbox_bytecode.py").write_text("changed")
    monkeypatch.setattr(spec, "HOST_FILES_DIR", tmp_path)
    after = [sandbox.rootfs_key("http://mirror.test/debian", kind) for kind in ("vm", "container")]
    assert after[0] != before[0] and after[1] != before[1]


def load_module(monkeypatch, zipimport_module):
    """The module as an interpreter start imports it, with the given zipimport."""
    monkeypatch.setitem(sys.modules, "zipimport", zipimport_module)
    spec_ = importlib.util.spec_from_file_location("bytecode_under_test", HOST_FILES / "onprem_sandbox_bytecode.py")
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def test_an_interpreter_without_the_compile_function_is_left_as_it_is(monkeypatch):
    other = types.SimpleNamespace()  # a zipimport that compiles some other way
    load_module(monkeypatch, other)
    assert vars(other) == {}


def test_the_key_is_the_bytecode_version_and_the_source(tmp_path, monkeypatch):
    fake = types.SimpleNamespace(_compile_source=lambda path, source: compile(source, path, "exec"))
    module = load_module(monkeypatch, fake)
    assert fake._compile_source is module.compile_source  # pylint: disable=protected-access
    module.CACHE_DIR = str(tmp_path / "cache")
    namespace = {}
    exec(module.compile_source("bytes.py", b"VALUE = 6\n"), namespace)  # pylint: disable=exec-used
    assert namespace["VALUE"] == 6
    assert os.listdir(tmp_path / "cache") == [hashlib.sha256(importlib.util.MAGIC_NUMBER + b"VALUE = 6\n").hexdigest()]
