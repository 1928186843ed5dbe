"""pytest fixtures for tests against a real multi-datacenter Cassandra cluster.

Load with `pytest_plugins = ["testbed.pytest_plugin"]` in a conftest.py.

One testbed runs at a time. `testbed_cluster` is the default shape (one node per
datacenter); `testbed_of(nodes_per_dc=2, password_auth=True, ...)` gives a testbed of
another shape, stopping the one that runs first. Each shape starts once per session as long
as the tests of one shape run together (the tiers are ordered so).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import TestbedCluster, default_base_dir, default_net

HEALTHY_TIMEOUT_SECONDS = 180.0

Shape = tuple[tuple[str, Any], ...]


def session_base_dir() -> str:
    """The folder of the per-session cluster, apart from one started with the CLI."""
    return str(default_base_dir() / "pytest")


def _shape(options: dict[str, Any]) -> Shape:
    return tuple(sorted(options.items()))


def _shape_of(cluster: TestbedCluster, keys: Shape) -> Shape:
    return tuple((key, getattr(cluster, key, None)) for key, _ in keys)


def _text(value: Any) -> str:
    return "+".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _describe(shape: Shape) -> str:
    return ", ".join(f"{key}={value}" for key, value in shape) or "the default shape"


class TestbedKeeper:
    """Starts testbeds of the shapes asked for, never two at once."""

    __test__ = False

    def __init__(self, reuse: bool) -> None:
        self.reuse = reuse
        self._clusters: dict[Shape, TestbedCluster] = {}
        self._current: TestbedCluster | None = None

    def get(self, **options: Any) -> TestbedCluster:
        shape = _shape(options)
        if self.reuse:
            return self._reused(shape)
        cluster = self._clusters.get(shape)
        if cluster is None:
            base = Path(session_base_dir())
            folder = base if not shape else base.with_name(
                "pytest-" + "-".join(f"{key}-{_text(value)}" for key, value in shape)
            )
            cluster = TestbedCluster(net=default_net(), base_dir=folder, **options)
            self._clusters[shape] = cluster
        if self._current is not cluster:
            if self._current is not None:
                self._current.down()
            self._current = None
            cluster.up()
            self._current = cluster
        elif not cluster.is_running():
            cluster.up()
        return cluster

    def _reused(self, shape: Shape) -> TestbedCluster:
        running = TestbedCluster.running()
        if running is None:
            raise RuntimeError(
                f"CQRS_TESTBED_REUSE=1 but no testbed runs in {default_base_dir()} "
                "(start one with `python -m testbed up`)"
            )
        have = _shape_of(running, shape)
        if have != shape:
            pytest.skip(
                f"needs a testbed with {_describe(shape)}; the reused one has {_describe(have)}"
            )
        return running

    def stop(self) -> None:
        if self._current is not None:
            self._current.down()
            self._current = None


@pytest.fixture(scope="session")
def testbed_keeper() -> Iterator[TestbedKeeper]:
    keeper = TestbedKeeper(reuse=os.environ.get("CQRS_TESTBED_REUSE") == "1")
    try:
        yield keeper
    finally:
        keeper.stop()


@pytest.fixture(scope="session")
def testbed_cluster(testbed_keeper: TestbedKeeper) -> TestbedCluster:
    """A fresh cluster, one node per datacenter, started once per test session.

    With CQRS_TESTBED_REUSE=1 the testbed already running in CQRS_TESTBED_DIR is used and
    left running, so that several test sessions share one cluster instead of each starting
    its own. A cluster that cannot start makes the tests that use it error (never skip),
    with the reason and the node's last log lines.
    """
    return testbed_keeper.get()


@pytest.fixture
def testbed_of(testbed_keeper: TestbedKeeper) -> Callable[..., TestbedCluster]:
    """`testbed_of(nodes_per_dc=2, ...)`: a healthy testbed of that shape, without faults."""

    def get(**options: Any) -> TestbedCluster:
        cluster = testbed_keeper.get(**options)
        restore(cluster)
        return cluster

    return get


@pytest.fixture(autouse=True)
def _default_shape_running(request: pytest.FixtureRequest) -> None:
    """A test of the default shape after tests of another gets the default testbed back."""
    if "testbed_cluster" in request.fixturenames:
        keeper: TestbedKeeper = request.getfixturevalue("testbed_keeper")
        keeper.get()


def restore(cluster: TestbedCluster) -> None:
    """Heal replication, resume paused nodes, start stopped ones, and wait until healthy."""
    cluster.refresh()  # a node another process restarted runs under a PID only it saved
    cluster.heal()
    for node in cluster.nodes:
        state = node.state()
        if state == "paused":
            cluster.resume(node.dc, node.ordinal)
        elif state == "stopped":
            cluster.start(node.dc, node.ordinal)
    cluster.wait_healthy(HEALTHY_TIMEOUT_SECONDS)


@pytest.fixture
def healthy_testbed(testbed_cluster: TestbedCluster) -> Iterator[TestbedCluster]:
    """The session cluster with every node up and no fault before and after the test.

    For tests that pause or kill nodes or cut replication: whatever they leave behind is
    undone before the next test runs.
    """
    restore(testbed_cluster)
    try:
        yield testbed_cluster
    finally:
        restore(testbed_cluster)
