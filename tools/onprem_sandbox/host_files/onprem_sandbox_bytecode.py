"""Sandbox hosts only: a bytecode cache for modules imported from zip files.

Ansible sends each task's module with its module_utils as a zip, and Python compiles every
source in it on every task (zipimport writes no .pyc): about a third of a task's time in a QEMU
guest under software emulation, and a fifth of a module's run in a container. This caches each
compiled module under the hash of its source and of the interpreter's bytecode version, in a
directory only root can read or write; anything unexpected falls back to compiling, as without
the cache. Installed into the host images by tools/onprem_sandbox/rootfs.py (a .pth file imports
it at every interpreter start); not part of the collection.
"""
import marshal
import os
import zipimport

# Every interpreter start imports this: only modules that are loaded at start-up anyway, here
# (hashlib, with OpenSSL, is imported at the first zip import). An error here would be printed
# at every start, so an interpreter without what this needs just goes on compiling.
try:
    from _frozen_importlib_external import MAGIC_NUMBER  # what importlib.util.MAGIC_NUMBER is
except ImportError:
    MAGIC_NUMBER = None

CACHE_DIR = "/var/cache/onprem-sandbox-bytecode"
_compile = getattr(zipimport, "_compile_source", None)


def _with_filename(code, filename):
    """The code object, and every one nested in it, naming the zip it was imported from now."""
    consts = tuple(_with_filename(c, filename) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def compile_source(pathname, source):
    import hashlib  # pylint: disable=import-outside-toplevel
    path = os.path.join(CACHE_DIR, hashlib.sha256(MAGIC_NUMBER + source).hexdigest())
    try:
        with open(path, "rb") as cached:
            code = marshal.load(cached)
        if isinstance(code, type(compile_source.__code__)):
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
    if _compile is not None and MAGIC_NUMBER is not None:
        zipimport._compile_source = compile_source  # pylint: disable=protected-access


install()
