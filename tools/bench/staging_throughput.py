#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staging throughput of onprem.deepseek.model_artifact compared with a plain copy.

Creates a few random files under --dir, writes a manifest.json for them, then copies the same
files on the same disk twice: with shutil.copyfile (the baseline) and with the module's staging
function (hash while copying, then verify). Prints both throughputs and their ratio; the target
is a ratio of at least 0.7. There is no pass/fail exit status.

Both methods fsync every file by default, since the module does before it switches `current`;
that is the comparison that matters on a real disk. With --no-fsync both only fill the page
cache, and staging is then capped by the CPU's SHA-256 speed (hashing overlaps the I/O in a
worker thread, but a memory-to-memory copy is faster than any SHA-256), so expect a lower ratio.

Usage: tools/bench/staging_throughput.py [--size 512M] [--files 4] [--dir /srv/deepseek/hot]
       [--repeat 3] [--no-fsync]
Run it on the disk you care about: --dir must be on the hot tier to measure the hot tier.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _import_artifact():
    # Import from this source tree under the collection's real name, without installing it.
    root = Path(__file__).resolve().parents[2]
    tree = Path(tempfile.mkdtemp(prefix="onprem-deepseek-bench-"))
    (tree / "ansible_collections" / "onprem").mkdir(parents=True)
    (tree / "ansible_collections" / "onprem" / "deepseek").symlink_to(root)
    sys.path.insert(0, str(tree))
    from ansible_collections.onprem.deepseek.plugins.module_utils import (
        _artifact_manifest, _artifact_source, _artifact_store)
    return _artifact_manifest, _artifact_source, _artifact_store, tree


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def make_source(root, name, version, total, count):
    vdir = root / name / version
    vdir.mkdir(parents=True)
    per_file = max(1, total // count)
    block = os.urandom(1 << 20)
    files = []
    for i in range(count):
        rel = "model-%05d-of-%05d.safetensors" % (i + 1, count)
        digest = hashlib.sha256()
        with open(vdir / rel, "wb") as handle:
            left = per_file
            # vary each MiB so no filesystem can deduplicate or compress it away
            n = 0
            while left:
                chunk = (n.to_bytes(8, "little") + block[8:])[:left]
                handle.write(chunk)
                digest.update(chunk)
                left -= len(chunk)
                n += 1
        files.append({"path": rel, "size": per_file, "sha256": digest.hexdigest()})
    (vdir / "manifest.json").write_text(json.dumps({"model": name, "version": version, "files": files}))
    return vdir, files


def plain_copy(vdir, out, files, fsync):
    out.mkdir()
    for item in files:
        dst = out / item["path"]
        shutil.copyfile(vdir / item["path"], dst)
        if fsync:
            fd = os.open(dst, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def drop_cache_hint(vdir, files):
    # Ask the kernel to forget the source pages so neither run gets them from memory for free
    # (best effort; root may also write /proc/sys/vm/drop_caches).
    for item in files:
        fd = os.open(vdir / item["path"], os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        finally:
            os.close(fd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512M", help="total size of the test files (default 512M)")
    parser.add_argument("--files", type=int, default=4, help="number of files (default 4)")
    parser.add_argument("--dir", default=None, help="work directory on the disk to measure (default: temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method; the best is reported")
    parser.add_argument("--no-fsync", action="store_true",
                        help="skip fsync in both methods (the module fsyncs staged files)")
    parser.add_argument("--cold", action="store_true",
                        help="drop the source files from the page cache before every run")
    args = parser.parse_args()

    manifests, sources, stores, tree = _import_artifact()
    total = parse_size(args.size)
    fsync = not args.no_fsync
    work = Path(tempfile.mkdtemp(prefix="staging-bench-", dir=args.dir))
    try:
        src = work / "src"
        vdir, files = make_source(src, "bench-model", "v1", total, args.files)
        nbytes = sum(f["size"] for f in files)
        dest = work / "dest"
        dest.mkdir()
        store = stores.ModelStore(str(dest), "bench-model")
        raw = (vdir / "manifest.json").read_bytes()
        manifest = manifests.parse_manifest_json(raw, "bench-model", "v1")
        source = sources.LocalSource(str(vdir))

        plain, staged = [], []
        for i in range(args.repeat):
            out = work / ("plain-%d" % i)
            if args.cold:
                drop_cache_hint(vdir, files)
            t0 = time.perf_counter()
            plain_copy(vdir, out, files, fsync)
            plain.append(time.perf_counter() - t0)
            shutil.rmtree(out)

            if args.cold:
                drop_cache_hint(vdir, files)
            t0 = time.perf_counter()
            staging, _fetched, _n = stores.stage_version(store, source, manifest, "v1", fsync=fsync)
            staged.append(time.perf_counter() - t0)
            shutil.rmtree(staging)

        mib = nbytes / float(1 << 20)
        plain_tp = mib / min(plain)
        staged_tp = mib / min(staged)
        print("files: %d, total %.1f MiB, work dir %s, fsync %s, cold %s, best of %d"
              % (len(files), mib, work, "on" if fsync else "off", "on" if args.cold else "off", args.repeat))
        print("plain copy (shutil.copyfile):  %8.1f MiB/s" % plain_tp)
        print("staging (sha256 + verify):     %8.1f MiB/s" % staged_tp)
        print("ratio staging/plain:           %8.2f  (target >= 0.70)" % (staged_tp / plain_tp))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    main()
