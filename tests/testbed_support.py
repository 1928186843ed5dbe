"""Helpers for tests that drive the testbed itself: a session pinned to one node, polling
with a deadline, the testbed's CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import ConstantReconnectionPolicy, WhiteListRoundRobinPolicy

from testbed.cluster import repo_root

T = TypeVar("T")


@contextmanager
def connect(address: str) -> Iterator[Session]:
    """A session whose every request goes to the node at `address`."""
    # A generous timeout: schema changes on a busy two-core machine can take many seconds.
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([address]), request_timeout=60
    )
    cluster = Cluster(
        contact_points=[address],
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        reconnection_policy=ConstantReconnectionPolicy(1.0),
        connect_timeout=10,
        control_connection_timeout=10,
    )
    try:
        yield cluster.connect(wait_for_all_pools=True)
    finally:
        cluster.shutdown()


def eventually(attempt: Callable[[], T], timeout: float, what: str) -> T:
    """Call `attempt` until it returns without raising, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{what} did not happen within {timeout:.0f} s: {exc!r}"
                ) from exc
            time.sleep(0.5)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed", *args],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )
