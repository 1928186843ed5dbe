"""Inspecting and signalling the server processes through /proc."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.1


def cmdline(pid: int) -> list[str]:
    """The arguments of process `pid`, or [] when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat (R, S, T, Z, ...), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in parentheses may itself hold spaces or parentheses.
    return stat[stat.rindex(")") + 2]


def rss_bytes(pid: int) -> int | None:
    """Resident memory of `pid` from /proc/<pid>/status, None when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def reap(pid: int) -> None:
    """Collect the exit status of `pid` if it is a finished child of this process."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, ProcessLookupError):
        return 0


def is_alive(pid: int) -> bool:
    """Whether any thread of process `pid` still runs.

    A JVM's main thread can be a zombie while its other threads still shut down
    and hold its sockets, so a zombie with more than one thread counts as alive.
    """
    reap(pid)
    state = proc_state(pid)
    if state is None:
        return False
    if state in ("Z", "X"):
        return thread_count(pid) > 1
    return True


def send(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited; True if it did within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def terminate(pid: int, grace: float) -> None:
    """SIGCONT (in case it is paused), SIGTERM, and SIGKILL after `grace` seconds."""
    send(pid, signal.SIGCONT)
    send(pid, signal.SIGTERM)
    if not wait_for_exit(pid, grace):
        send(pid, signal.SIGKILL)
        wait_for_exit(pid, 30.0)


def stop_child(process: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """End a child started with Popen: SIGTERM, and SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """As a Popen `preexec_fn`: have the kernel send the child SIGTERM when the thread that
    started it ends, however the parent ends (a SIGKILL included), so that no child outlives
    it. Start such children from the main thread, which lives as long as the process."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
