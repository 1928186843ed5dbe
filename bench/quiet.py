"""Waiting for a quiet machine before taking figures, and reading a process's footprint."""

from __future__ import annotations

import os
import time
from pathlib import Path

MAX_LOAD = 2.0
"""Figures are taken only while the 1-minute load average is under this."""


def load() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(
    limit: float = MAX_LOAD, timeout: float | None = None, *, required: bool = True
) -> float:
    """Poll the 1-minute load until it is under `limit` and return it; after `timeout`
    seconds ($CQRS_BENCH_QUIET_TIMEOUT, default 900) exit, or go on if not `required`
    (for figures the load does not sway, such as a soak's growth)."""
    if timeout is None:
        timeout = float(os.environ.get("CQRS_BENCH_QUIET_TIMEOUT", "900"))
    deadline = time.monotonic() + timeout
    announced = False
    while (current := load()) >= limit:
        if time.monotonic() > deadline:
            message = (
                f"the machine stayed busy (load {current:.2f} >= {limit:g}) for {timeout:.0f} s"
            )
            if not required:
                print(f"{message}: going on", flush=True)
                return current
            raise SystemExit(message)
        if not announced:
            print(f"waiting for the load ({current:.2f}) to fall under {limit:g}", flush=True)
            announced = True
        time.sleep(5)
    return current


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))
