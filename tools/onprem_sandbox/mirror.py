"""The site mirror on the uplink address: an apt proxy, a Python package index and an
HTTP artifact store. Upstream addresses come from this machine's own apt and pip
configuration; the hosts reach nothing else."""
from __future__ import annotations

import hashlib
import html
import re
import shutil
import socket
import sys
from pathlib import Path

from .run import log, sh, spawn, wait_for


def _port_open(address, port):
    try:
        with socket.create_connection((str(address), port), timeout=1):
            return True
    except OSError:
        return False


def start_apt_proxy(spec, state_dir, cache_dir):
    run_dir = Path(state_dir) / "mirror"
    apt_cache = Path(cache_dir) / "apt"
    for d in (run_dir, apt_cache, run_dir / "apt-log"):
        d.mkdir(parents=True, exist_ok=True)
    # Our own configuration, without the distribution's backend remapping: requests go to
    # exactly the upstream that the hosts' sources name (this machine's own).
    conf = run_dir / "acng"
    conf.mkdir(exist_ok=True)
    (conf / "acng.conf").write_text(
        f"CacheDir: {apt_cache}\nLogDir: {run_dir / 'apt-log'}\nSupportDir: /usr/lib/apt-cacher-ng\n"
        f"BindAddress: {spec.mirror_address}\nPort: {spec.apt_port}\n"
        f"SocketPath: {run_dir / 'acng.socket'}\nPidFile: {run_dir / 'acng.pid'}\n"
        "ForeGround: 1\nExThreshold: 365\nReuseConnections: 1\n"
    )
    pid = spawn(["/usr/sbin/apt-cacher-ng", "-c", conf], run_dir / "apt-cacher-ng.out")
    wait_for(lambda: _port_open(spec.mirror_address, spec.apt_port), 30, "the apt proxy")
    return pid


def start_http(spec, www):
    pid = spawn(
        [sys.executable, "-m", "http.server", "--bind", str(spec.mirror_address),
         "--directory", str(www), str(spec.http_port)],
        Path(www).parent / "http.out",
    )
    wait_for(lambda: _port_open(spec.mirror_address, spec.http_port), 30, "the HTTP mirror")
    return pid


def prepare_www(spec, state_dir, wheels):
    """Lay out the HTTP root: /pypi/simple/ (PEP 503) and /artifacts/.

    `wheels` is a wheelhouse shared by all sandboxes (files there never change), filled with
    this machine's own pip configuration, so the upstream index is never named here.
    """
    www = Path(state_dir) / "mirror" / "www"
    (www / "artifacts").mkdir(parents=True, exist_ok=True)
    wheels = Path(wheels)
    stamps = wheels / ".stamps"
    stamps.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
           "--only-binary=:all:", "-d", wheels]
    if spec.pypi_requirements:
        _download_once(stamps, "\n".join(spec.pypi_requirements),
                       pip + list(spec.pypi_requirements), ", ".join(spec.pypi_requirements))
    for req_file in spec.pypi_requirement_files:
        # Frozen lists (every dependency pinned): taken exactly as written.
        _download_once(stamps, Path(req_file).read_text(), pip + ["--no-deps", "-r", req_file], req_file)
    write_simple_index(wheels, www / "pypi")
    return www


def _download_once(stamps, what, cmd, label):
    stamp = stamps / hashlib.sha256(what.encode()).hexdigest()[:16]
    if stamp.exists():
        return
    log(f"filling the Python package index: {label}")
    sh(*cmd)
    stamp.write_text(what)


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(filename):
    if filename.endswith(".whl"):
        return filename.split("-")[0]
    m = re.match(r"^(.+?)-\d", filename)
    return m.group(1) if m else None


def write_simple_index(wheels, root):
    """A PEP 503 simple index over a wheelhouse; links carry sha256 fragments for pip."""
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    (root / "simple").mkdir(parents=True)
    files_dir = root / "files"
    files_dir.mkdir()
    projects = {}
    for f in sorted(Path(wheels).iterdir()):
        name = dist_name(f.name)
        if not name or not (f.name.endswith(".whl") or f.name.endswith(".tar.gz")):
            continue
        (files_dir / f.name).symlink_to(f.resolve())
        projects.setdefault(normalize(name), []).append(f)
    for project, files in projects.items():
        d = root / "simple" / project
        d.mkdir()
        links = "".join(
            f'<a href="../../files/{html.escape(f.name)}#sha256={_sha256(f)}">{html.escape(f.name)}</a><br>\n'
            for f in files
        )
        (d / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    top = "".join(f'<a href="{p}/">{p}</a><br>\n' for p in sorted(projects))
    (root / "simple" / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{top}</body></html>\n")
    return sorted(projects)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def publish(www, src, dest):
    """Copy a file or directory into the artifact store under `dest`."""
    target = Path(www) / "artifacts" / dest.strip("/")
    if Path(src).is_dir():
        shutil.copytree(src, target, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    return target
