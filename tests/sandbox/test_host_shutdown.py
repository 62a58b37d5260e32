"""Taking a container down: nspawn gets SIGTERM and, after the timeout, SIGKILL; the container's
init (nspawn's child, in a session of its own) must not outlive it. Stand-ins here: a shell that
ignores SIGTERM for nspawn, and a child of it in its own session that ignores SIGTERM too."""
import subprocess
import time

from onprem_sandbox import hosts, run

# The init stand-in execs its sleep, so that killing it leaves nothing behind.
STAND_IN = 'trap "" TERM; setsid sh -c \'trap "" TERM; exec sleep 60\' & sleep 60 & wait'


def _wait_for_children(pid, count):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = hosts.children(pid)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError("pid %d has children %r" % (pid, hosts.children(pid)))


def test_children_are_the_direct_children_only():
    proc = subprocess.Popen(["sh", "-c", STAND_IN])
    found = []
    try:
        found = _wait_for_children(proc.pid, 2)
        assert len(found) == 2 and proc.pid not in found
        grandchildren = [g for c in found for g in hosts.children(c)]
        assert not set(grandchildren) & set(found)
    finally:
        run.stop([proc.pid], timeout=0.1)
        run.stop(found, timeout=0.1)


def test_children_of_a_process_that_is_gone_are_none():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert hosts.children(proc.pid) == []


def test_shutdown_kills_the_init_that_outlives_a_killed_nspawn():
    proc = subprocess.Popen(["sh", "-c", STAND_IN])
    found = _wait_for_children(proc.pid, 2)
    # The child in its own session: the stand-in for the container's init.
    init = [c for c in found if open("/proc/%d/stat" % c).read().rsplit(") ", 1)[1].split()[3] == str(c)]
    assert len(init) == 1
    hosts.shutdown([proc.pid], timeout=0.5)
    assert not run.alive(proc.pid)
    deadline = time.monotonic() + 5
    while run.alive(init[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not run.alive(init[0])
