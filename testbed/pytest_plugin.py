"""pytest fixtures for tests against a real three-datacenter Cassandra cluster.

Load with `pytest_plugins = ["testbed.pytest_plugin"]` in a conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from testbed.cluster import TestbedCluster, default_base_dir, default_net

HEALTHY_TIMEOUT_SECONDS = 180.0


def session_base_dir() -> str:
    """The folder of the per-session cluster, apart from one started with the CLI."""
    return str(default_base_dir() / "pytest")


@pytest.fixture(scope="session")
def testbed_cluster() -> Iterator[TestbedCluster]:
    """A fresh cluster, one node per datacenter, started once per test session.

    With CQRS_TESTBED_REUSE=1 the testbed already running in CQRS_TESTBED_DIR is used and
    left running, so that several test sessions share one cluster instead of each starting
    its own. A cluster that cannot start makes the tests that use it error (never skip),
    with the reason and the node's last log lines.
    """
    if os.environ.get("CQRS_TESTBED_REUSE") == "1":
        running = TestbedCluster.running()
        if running is None:
            raise RuntimeError(
                f"CQRS_TESTBED_REUSE=1 but no testbed runs in {default_base_dir()} "
                "(start one with `python -m testbed up`)"
            )
        yield running
        return
    cluster = TestbedCluster(net=default_net(), base_dir=session_base_dir())
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


def restore(cluster: TestbedCluster) -> None:
    """Resume paused nodes, start stopped ones, and wait until every node is healthy."""
    for node in cluster.nodes:
        state = node.state()
        if state == "paused":
            cluster.resume(node.dc)
        elif state == "stopped":
            cluster.start(node.dc)
    cluster.wait_healthy(HEALTHY_TIMEOUT_SECONDS)


@pytest.fixture
def healthy_testbed(testbed_cluster: TestbedCluster) -> Iterator[TestbedCluster]:
    """The session cluster with every node up before and after the test.

    For tests that pause or kill nodes: whatever they leave behind is undone
    before the next test runs.
    """
    restore(testbed_cluster)
    try:
        yield testbed_cluster
    finally:
        restore(testbed_cluster)
