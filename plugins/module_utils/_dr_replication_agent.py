# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The gateway host's audit replication agent, as a service (built with _dr_replication and
_dr_report into roles/dr/files/onprem_deepseek_dr_replication.py by tools/build_keywrap.py).

Every ``interval_s`` it appends a heartbeat line to ``heartbeat_file`` (rsyslog sends it to the
other sites through the audit's own queue; the file is emptied past ``heartbeat_max_bytes``, which
imfile follows), reads what the replica files of ``senders`` gained since the last pass and writes
the lag metrics to ``metrics_file`` for the node exporter. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ansible_collections.onprem.deepseek.plugins.module_utils._textfile import load_checked_json, write_atomically
from ansible_collections.onprem.deepseek.plugins.module_utils._dr_replication import (
    DrReplicationError, SenderView, check_agent_config, heartbeat_line, metrics_text, parse_replica_line)

# How much of an existing replica file a starting agent reads back to find the newest record.
BACKLOG_BYTES = 16 * 1024 * 1024


class ReplicaReader:
    """Follows one replica file: complete lines only, from where the last pass stopped; starts
    over when the file is replaced or truncated (logrotate)."""

    def __init__(self, path, view):
        self.path, self.view = path, view
        self.inode = self.offset = None
        self.partial = b""

    def poll(self):
        try:
            handle = open(self.path, "rb")
        except OSError:
            return
        with handle:
            stat = os.fstat(handle.fileno())
            if self.inode != stat.st_ino or stat.st_size < (self.offset or 0):
                self.inode, self.partial = stat.st_ino, b""
                # A first look (or a new file) reads the end back far enough to find the newest record.
                self.offset = max(0, stat.st_size - BACKLOG_BYTES) if self.offset is None else 0
                if self.offset:
                    handle.seek(self.offset)
                    self.offset += len(handle.readline())
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            self.view.observe(parse_replica_line(line))


def beat(path, max_bytes, now):
    """Append one heartbeat; empty the file first when it has grown past ``max_bytes``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        if os.fstat(fd).st_size > max_bytes:
            os.ftruncate(fd, 0)
        os.write(fd, heartbeat_line(now).encode("ascii"))
    finally:
        os.close(fd)


def serve(config, passes=None, clock=time.monotonic, sleep=time.sleep, wall=time.time):
    """Beat, read and export until stopped (or ``passes`` times, for tests); returns the views."""
    views = [SenderView(s["name"], s["site"]) for s in config["senders"]]
    readers = [ReplicaReader(os.path.join(config["replica_dir"], view.name + ".log"), view) for view in views]
    started, done, failed = wall(), 0, set()
    while passes is None or done < passes:
        tick = clock()
        for what, action in (("heartbeat", lambda: beat(config["heartbeat_file"], config["heartbeat_max_bytes"], wall())),
                             ("replicas", lambda: [reader.poll() for reader in readers]),
                             ("metrics", lambda: config["metrics_file"] and write_atomically(
                                 config["metrics_file"], metrics_text(views, wall(), config["interval_s"], started)))):
            try:
                action()
                failed.discard(what)
            except OSError as exc:
                # Said once per failure, not every second; the next pass tries again.
                if what not in failed:
                    sys.stderr.write("%s: %s\n" % (what, exc))
                    sys.stderr.flush()
                failed.add(what)
        done += 1
        sleep(max(0.0, config["interval_s"] - (clock() - tick)))
    return views


def main(argv=None):
    parser = argparse.ArgumentParser(prog="onprem_deepseek_dr_replication.py",
                                     description="Heartbeat and lag metrics of the audit replication between sites.")
    parser.add_argument("command", choices=("serve", "check"))
    parser.add_argument("--config", required=True, help="the settings (JSON)")
    args = parser.parse_args(argv)
    try:
        config = load_checked_json(args.config, check_agent_config, DrReplicationError)
    except DrReplicationError as exc:
        sys.stderr.write("onprem_deepseek_dr_replication: %s\n" % exc)
        return 2
    if args.command == "check":
        return 0
    serve(config)
    return 0
