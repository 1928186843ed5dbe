"""Fixtures shared by the suite: the real testbed cluster, and exporter configs for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import merge

pytest_plugins = ["testbed.pytest_plugin"]


@pytest.fixture(scope="session")
def testbed_config(testbed_cluster: Any) -> dict[str, Any]:
    """A config (as a dict) for the session's real testbed cluster."""
    return {
        "cluster": {
            "contact_points": list(testbed_cluster.contact_points),
            "connect_timeout": "10s",
        },
        "datacenters": {
            "write": testbed_cluster.write_datacenter,
            "read": list(testbed_cluster.read_datacenters),
        },
        "monitoring": {"create_schema": True, "replication_factor": 1},
    }


@pytest.fixture
def make_config(testbed_config: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """`make_config({...})` deep-merges overrides into the testbed config."""

    def make(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return merge(testbed_config, overrides or {})

    return make
