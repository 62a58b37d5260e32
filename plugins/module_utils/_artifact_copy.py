# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one-pass verified copy: each byte is read once, hashed and written (private to the collection).

``stream_copy`` copies one file: the calling thread reads chunks, a hasher thread digests them
and a writer thread writes them (with O_DIRECT when the file must reach the disk), over three
rotating buffers. ``run_each`` runs such copies for several files at once on a bounded pool of threads:
SHA-256 of one file cannot be split, but hashlib and the read/write system calls release the
GIL, so files copied side by side use several cores.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import mmap
import os
import queue
import threading

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import ArtifactError

CHUNK_SIZE = 4 * 1024 * 1024
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Past this many files at once the disks are saturated; each copy holds three chunk buffers.
MAX_WORKERS = 16


class Cancelled(Exception):
    """Another file of the same staging failed: this copy stops before its next chunk."""


def default_workers():
    """One file per CPU the process may run on (its cpuset), at most MAX_WORKERS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


def run_each(func, items, workers):
    """Call ``func(item, cancelled)`` for every item, at most ``workers`` at once, starting in order.

    Returns the results in item order. The first failure sets ``cancelled``: running calls stop
    before their next chunk (raising ``Cancelled``) and no further item starts. The failure is
    re-raised only after every thread has ended, so the caller can then remove what they wrote.
    """
    items = list(items)
    results = [None] * len(items)
    cancelled = threading.Event()
    if workers <= 1 or len(items) <= 1:
        for index, item in enumerate(items):
            results[index] = func(item, cancelled)
        return results
    todo = queue.Queue()
    for pair in enumerate(items):
        todo.put(pair)
    errors = []

    def work():
        while not cancelled.is_set():
            try:
                index, item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[index] = func(item, cancelled)
            except Cancelled:
                return
            except BaseException as exc:  # pylint: disable=broad-exception-caught
                # handed over to the calling thread, which re-raises it
                errors.append(exc)
                cancelled.set()
                return

    threads = [threading.Thread(target=work, name="model-artifact-copy-%d" % number, daemon=True)
               for number in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        # also when this thread is interrupted: stop the copies, and let them end before returning
        cancelled.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return results


def write_all(fd, data):
    """Write the whole buffer; tests patch this to simulate a full disk."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_into(stream, buf):
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto(buf) or 0
    data = stream.read(len(buf))
    buf[:len(data)] = data
    return len(data)


def _fill(stream, view):
    """Read until ``view`` is full or the stream ends; return (bytes read, whether the sender hung up).

    Full chunks keep direct writes aligned, whatever sizes a socket hands out.
    """
    filled = 0
    while filled < len(view):
        try:
            n = _read_into(stream, view[filled:])
        except http.client.IncompleteRead:
            return filled, True
        if not n:
            break
        filled += n
    return filled, False


_WRITEBACK_STEP = 32 * 1024 * 1024
# O_DIRECT wants buffer addresses, lengths and offsets aligned to the logical block size (<= 4096).
_DIRECT_ALIGN = 4096


def _start_writeback(fd, offset, length):
    """Start writing back what is already written, so the final fsync has little left to wait for.

    On Linux POSIX_FADV_DONTNEED starts writeback of dirty pages in the range without waiting.
    """
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):
        pass


def _set_direct(fd, enable):
    """Switch O_DIRECT on or off; False when the filesystem (tmpfs, some FUSE) refuses it."""
    o_direct = getattr(os, "O_DIRECT", 0)
    if not o_direct:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | o_direct) if enable else (flags & ~o_direct))
    except OSError:
        return False
    return True


def _write_chunk(fd, chunk, start, direct):
    """Write ``chunk``, which belongs at offset ``start``; return whether O_DIRECT is still on.

    An unaligned tail, or a direct write the filesystem refuses after accepting the flag, is
    written through the page cache, and so is the rest of the file.
    """
    if not direct:
        write_all(fd, chunk)
        return False
    aligned = len(chunk) - len(chunk) % _DIRECT_ALIGN
    try:
        if aligned:
            write_all(fd, chunk[:aligned])
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        aligned = 0
    if aligned == len(chunk):
        return True
    _set_direct(fd, False)
    os.lseek(fd, start + aligned, os.SEEK_SET)
    write_all(fd, chunk[aligned:])
    return False


class _Slot:
    """One chunk buffer; free again once every stage that received it is done with it."""

    __slots__ = ("buf", "view", "free", "_pending", "_lock")

    def __init__(self, size):
        # anonymous mmap: page-aligned, as O_DIRECT needs
        self.buf = mmap.mmap(-1, size)
        self.view = memoryview(self.buf)
        self.free = threading.Event()
        self.free.set()
        self._pending = 0
        self._lock = threading.Lock()

    def take(self, stages):
        self.free.wait()
        self.free.clear()
        self._pending = stages

    def done(self):
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self.free.set()


class _Stage:
    """Runs ``work(view)`` for each chunk, in order, in its own thread (or inline for small files).

    The hasher and the writer are stages, so hashing and writing a chunk overlap reading the next
    one; hashlib and os.write release the GIL for large buffers. After the first error the stage
    only hands chunks back, and the error is kept for the reading thread to raise.
    """

    def __init__(self, name, work, threaded):
        self._work = work
        self.error = None
        self._todo = None
        self._thread = None
        if threaded:
            self._todo = queue.Queue()
            self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
            self._thread.start()

    def _run(self, view, slot):
        try:
            if self.error is None:
                self._work(view)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # kept for the reading thread, which raises it
            self.error = exc
        finally:
            slot.done()

    def _loop(self):
        while True:
            item = self._todo.get()
            if item is None:
                return
            self._run(*item)

    def put(self, view, slot):
        if self._thread is None:
            self._run(view, slot)
        else:
            self._todo.put((view, slot))

    def close(self):
        if self._thread is not None:
            self._todo.put(None)
            self._thread.join()
            self._thread = None


class _Writer:
    """Appends chunks to ``fd``: with O_DIRECT while they are whole blocks, else through the page cache."""

    def __init__(self, fd, direct, fsync):
        self.fd = fd
        self.direct = direct
        self.fsync = fsync
        self.written = 0
        self.flushed = 0

    def __call__(self, chunk):
        self.direct = _write_chunk(self.fd, chunk, self.written, self.direct)
        self.written += len(chunk)
        if self.fsync and not self.direct and self.written - self.flushed >= _WRITEBACK_STEP:
            _start_writeback(self.fd, self.flushed, self.written - self.flushed)
            self.flushed = self.written


def stream_copy(stream, dest_path, entry, where, length=None, chunk_size=CHUNK_SIZE, fsync=True,
                cancelled=None):
    """Copy ``stream`` to ``dest_path`` hashing on the way; return the bytes written.

    ``entry.size`` (or the source's own ``length`` when the manifest has no sizes) bounds the
    read, so a truncated or oversized source is reported as such rather than as a bad hash.
    Once the ``cancelled`` event is set, the copy raises ``Cancelled`` before its next chunk.

    The calling thread reads; a hasher thread and a writer thread take each chunk from it, over
    three rotating buffers, so reading, hashing and writing overlap (small files run inline).
    With ``fsync`` the file is written with O_DIRECT where the filesystem allows it: the data
    has to reach the disk before the switch anyway, and going around the page cache saves a
    memory copy per byte and the final wait for writeback. Every chunk but the last is full
    and aligned; the last one's unaligned tail is written after O_DIRECT is switched off.
    """
    expected = entry.size if entry.size is not None else length
    small = expected is not None and expected <= chunk_size
    slots = [_Slot(chunk_size) for _i in range(1 if small else 3)]
    got = 0
    parent = os.path.dirname(dest_path)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        fd = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise ArtifactError("file %s: disk full while staging into %s" % (entry.path, where))
        raise ArtifactError("file %s: cannot create %s: %s" % (entry.path, dest_path, exc.strerror or exc))

    def write_failed(exc):
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            return ArtifactError("file %s: disk full while staging into %s" % (entry.path, where))
        reason = getattr(exc, "strerror", None) or exc
        return ArtifactError("file %s: write to %s failed: %s" % (entry.path, dest_path, reason))

    digest = hashlib.sha256()
    direct = fsync and not small and chunk_size % _DIRECT_ALIGN == 0 and _set_direct(fd, True)
    hasher = _Stage("model-artifact-sha256", digest.update, threaded=not small)
    writer = _Stage("model-artifact-write", _Writer(fd, direct, fsync), threaded=not small)
    try:
        index = 0
        while True:
            if cancelled is not None and cancelled.is_set():
                raise Cancelled(entry.path)
            if writer.error is not None:
                raise write_failed(writer.error)
            slot = slots[index % len(slots)]
            index += 1
            slot.take(2)
            try:
                n, hung_up = _fill(stream, slot.view)
            except (OSError, http.client.HTTPException) as exc:
                raise ArtifactError("file %s: read failed after %d bytes: %s" % (entry.path, got, exc))
            if hung_up and expected is None:
                raise ArtifactError("file %s: connection closed after %d bytes" % (entry.path, got + n))
            if not n:
                break
            got += n
            if expected is not None and got > expected:
                raise ArtifactError("file %s: larger than expected (expected %d bytes, got at least %d)"
                                    % (entry.path, expected, got))
            chunk = slot.view[:n]
            hasher.put(chunk, slot)
            writer.put(chunk, slot)
            if hung_up or n < len(slot.view):
                break
        hasher.close()
        writer.close()
        if writer.error is not None:
            raise write_failed(writer.error)
        if expected is not None and got < expected:
            raise ArtifactError("file %s: truncated (expected %d bytes, got %d)" % (entry.path, expected, got))
        actual = digest.hexdigest()
        if actual != entry.sha256:
            raise ArtifactError("file %s: sha256 mismatch (expected %s, got %s)" % (entry.path, entry.sha256, actual))
        if fsync:
            try:
                os.fsync(fd)
            except OSError as exc:
                if exc.errno in NO_SPACE:
                    raise ArtifactError("file %s: disk full while staging into %s" % (entry.path, where))
                raise ArtifactError("file %s: fsync of %s failed: %s" % (entry.path, dest_path, exc.strerror or exc))
    finally:
        hasher.close()
        writer.close()
        os.close(fd)
    return got


def verify_file(path, entry, chunk_size=CHUNK_SIZE):
    """Re-hash a staged file; return None when it matches, else the reason naming the file."""
    try:
        size = os.lstat(path).st_size
        if entry.size is not None and size != entry.size:
            return "file %s: size %d, manifest says %d" % (entry.path, size, entry.size)
        digest = hashlib.sha256()
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as handle:
            while True:
                n = handle.readinto(view)
                if not n:
                    break
                digest.update(view[:n])
    except OSError as exc:
        return "file %s: %s" % (entry.path, exc.strerror or exc)
    if digest.hexdigest() != entry.sha256:
        return "file %s: sha256 mismatch (expected %s, got %s)" % (entry.path, entry.sha256, digest.hexdigest())
    return None


def verify_files(root, entries, chunk_size=CHUNK_SIZE, workers=1):
    """Re-hash the files of a staged version, up to ``workers`` at once.

    Returns the first problem in manifest order, or None when every file matches.
    """
    def check(entry, _cancelled):
        return verify_file(os.path.join(root, entry.path), entry, chunk_size)
    return next((problem for problem in run_each(check, entries, workers) if problem), None)
