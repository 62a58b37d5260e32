"""Sandbox QEMU guests only: a bytecode cache for modules imported from zip files.

Ansible sends each task's module with its module_utils as a zip, and Python compiles every
source in it on every task (zipimport writes no .pyc). Under software emulation that compiling
is about a third of a task's time. This caches each compiled module under the hash of its source
and of the interpreter's bytecode version, in a directory only root can read or write; anything
unexpected falls back to compiling, as without the cache. Installed into the guest image by
tools/onprem_sandbox/rootfs.py (a .pth file imports it); not part of the collection.
"""
import hashlib
import importlib.util
import marshal
import os
import types
import zipimport

CACHE_DIR = "/var/cache/onprem-sandbox-bytecode"
_compile = zipimport._compile_source  # pylint: disable=protected-access


def _with_filename(code, filename):
    """The code object, and every one nested in it, naming the zip it was imported from now."""
    consts = tuple(_with_filename(c, filename) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def compile_source(pathname, source):
    path = os.path.join(CACHE_DIR, hashlib.sha256(importlib.util.MAGIC_NUMBER + source).hexdigest())
    try:
        with open(path, "rb") as cached:
            code = marshal.load(cached)
        if isinstance(code, types.CodeType):
            return _with_filename(code, pathname)
    except (OSError, EOFError, ValueError, TypeError):
        pass
    code = _compile(pathname, source)
    try:
        os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "wb") as out:
            marshal.dump(code, out)
        os.replace(tmp, path)
    except OSError:
        pass
    return code


def install():
    zipimport._compile_source = compile_source  # pylint: disable=protected-access


install()
