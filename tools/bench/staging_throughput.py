#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staging throughput of onprem.deepseek.model_artifact compared with a plain copy.

For each total size and file count it creates random files under --dir with a manifest.json,
then copies them on the same disk, in turns within one run:

  plain    shutil.copyfile per file, one after the other (the baseline)
  serial   the module's staging (SHA-256 while copying, checked against the manifest), workers=1
  staging  the same with the module's default workers (one file per CPU), or --workers

Each round runs the three methods back to back after a sync, so a slow moment of a shared disk
hits all of them; the median of the rounds is printed, and the ratios of the medians. The target
is staging/plain >= 0.7. There is no pass/fail exit status. The CPU seconds per GiB of each
method (all its threads) are printed too: on a busy machine the speeds follow the share of CPU
a method gets, and staging needs more of it than a plain copy (SHA-256 alone is ~0.6 s/GiB).

Every method fsyncs every file by default, since the module does before it switches `current`;
that is the comparison that matters on a real disk. With --no-fsync all only fill the page
cache, and staging is then capped by SHA-256 speed per file, so expect a lower ratio.

Usage: tools/bench/staging_throughput.py [--sizes 1G,4G] [--files 1,4] [--dir /srv/deepseek/hot]
       [--rounds 3] [--workers N] [--no-fsync] [--cold] [--verbose]
Run it on the disk you care about: --dir must be on the hot tier to measure the hot tier.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
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
        _artifact_copy, _artifact_manifest, _artifact_source, _artifact_store)
    return _artifact_copy, _artifact_manifest, _artifact_source, _artifact_store, tree


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
                chunk = (n.to_bytes(8, "little") + i.to_bytes(8, "little") + block[16:])[:left]
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
    # Ask the kernel to forget the source pages so no run gets them from memory for free
    # (best effort; root may also write /proc/sys/vm/drop_caches).
    for item in files:
        fd = os.open(vdir / item["path"], os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        finally:
            os.close(fd)


def measure(mods, work, total, count, args):
    _copy, manifests, sources, stores = mods
    fsync = not args.no_fsync
    case = work / ("case-%d-%d" % (total, count))
    vdir, files = make_source(case / "src", "bench-model", "v1", total, count)
    nbytes = sum(f["size"] for f in files)
    (case / "dest").mkdir()
    store = stores.ModelStore(str(case / "dest"), "bench-model")
    manifest = manifests.parse_manifest_json((vdir / "manifest.json").read_bytes(), "bench-model", "v1")
    source = sources.LocalSource(str(vdir))

    def plain(i):
        out = case / ("plain-%d" % i)
        plain_copy(vdir, out, files, fsync)
        return out

    def staged(workers):
        def run(_i):
            staging, _fetched, _n = stores.stage_version(store, source, manifest, "v1", fsync=fsync,
                                                         workers=workers)
            return staging
        return run

    methods = [("plain", plain), ("serial", staged(1)), ("staging", staged(args.workers))]
    seconds = {name: [] for name, _f in methods}
    cpu = {name: [] for name, _f in methods}
    for i in range(args.rounds):
        for name, func in methods:
            if args.cold:
                drop_cache_hint(vdir, files)
            os.sync()  # earlier runs' dirty pages are not flushed on this run's time
            c0, t0 = cpu_seconds(), time.perf_counter()
            out = func(i)
            seconds[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds() - c0)
            if args.verbose:
                print("  round %d %-8s %6.2f s wall %6.2f s CPU" % (i + 1, name, seconds[name][-1], cpu[name][-1]))
            shutil.rmtree(out)
    shutil.rmtree(case)
    mib = nbytes / float(1 << 20)
    speed = {name: mib / statistics.median(values) for name, values in seconds.items()}
    # CPU seconds per GiB do not depend on what else runs on the machine; the speeds do
    per_gib = {name: statistics.median(values) * 1024 / mib for name, values in cpu.items()}
    rounds = " ".join("%.2f" % (p / s) for p, s in zip(seconds["plain"], seconds["staging"]))
    print("%6.0f MiB in %3d file(s): plain %7.1f MiB/s  serial %7.1f MiB/s (%.2f)  staging %7.1f MiB/s (%.2f; "
          "rounds %s)  CPU s/GiB %.2f %.2f %.2f"
          % (mib, len(files), speed["plain"], speed["serial"], speed["serial"] / speed["plain"], speed["staging"],
             speed["staging"] / speed["plain"], rounds, per_gib["plain"], per_gib["serial"], per_gib["staging"]))
    sys.stdout.flush()


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1G", help="total sizes of the test files, comma-separated (default 1G)")
    parser.add_argument("--files", default="1,4", help="file counts, comma-separated (default 1,4)")
    parser.add_argument("--dir", default=None, help="work directory on the disk to measure (default: temp dir)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three methods; medians are printed")
    parser.add_argument("--workers", type=int, default=None,
                        help="files staged at once (default: the module's default, one per CPU)")
    parser.add_argument("--no-fsync", action="store_true",
                        help="skip fsync in every method (the module fsyncs staged files)")
    parser.add_argument("--verbose", action="store_true", help="print every run's seconds")
    parser.add_argument("--cold", action="store_true",
                        help="drop the source files from the page cache before every run")
    args = parser.parse_args()

    copy_mod, manifests, sources, stores, tree = _import_artifact()
    workers = args.workers or copy_mod.default_workers()
    work = Path(tempfile.mkdtemp(prefix="staging-bench-", dir=args.dir))
    try:
        print("work dir %s, fsync %s, cold %s, %d CPUs, load %.1f, staging workers %d, median of %d rounds; "
              "(ratio to plain)" % (work, "off" if args.no_fsync else "on", "on" if args.cold else "off",
                                    os.cpu_count() or 0, os.getloadavg()[0], workers, args.rounds))
        for size in args.sizes.split(","):
            for count in args.files.split(","):
                measure((copy_mod, manifests, sources, stores), work, parse_size(size), int(count), args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    main()
