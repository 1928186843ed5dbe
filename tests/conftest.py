"""Fixtures shared by the suite: the real testbed cluster, and exporter configs for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import config_for, merge

pytest_plugins = ["testbed.pytest_plugin"]

# A test against the real cluster gets one more try: on a 2-core machine three Cassandra JVMs
# can stall together for seconds (GC, compaction), which no margin in one test rules out. A
# rerun is reported as such in pytest's summary, so a test that needs it is still visible.
CLUSTER_RERUNS = 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_cluster = item.get_closest_marker("cluster") or "testbed_cluster" in getattr(
            item, "fixturenames", ()
        )
        if uses_cluster and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=CLUSTER_RERUNS, reruns_delay=2))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say why each rerun test failed its first try (the rerun plugin names only the test)."""
    reports = terminalreporter.stats.get("rerun", [])
    if not reports:
        return
    terminalreporter.section("why tests were rerun")
    for report in reports:
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message.splitlines()[0] if crash is not None else str(report.longrepr)
        terminalreporter.write_line(f"{report.nodeid}: {reason[:300]}")


@pytest.fixture(scope="session")
def testbed_config(testbed_cluster: Any) -> dict[str, Any]:
    """A config (as a dict) for the session's real testbed cluster."""
    return config_for(testbed_cluster)


@pytest.fixture
def make_config(testbed_config: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """`make_config({...})` deep-merges overrides into the testbed config."""

    def make(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return merge(testbed_config, overrides or {})

    return make
