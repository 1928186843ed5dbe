"""Fixtures of the production-shaped tier: several nodes per datacenter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testbed import TestbedCluster
from tests.support import merge

NODES_PER_DC = 2


def config_for(cluster: TestbedCluster) -> dict[str, Any]:
    """An exporter config (as a dict) for `cluster`, its keyspace on every node."""
    return {
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {
            "write": cluster.write_datacenter,
            "read": list(cluster.read_datacenters),
        },
        "monitoring": {"create_schema": True, "replication_factor": cluster.replication_factor},
    }


@pytest.fixture
def multinode_testbed(testbed_of: Callable[..., TestbedCluster]) -> TestbedCluster:
    """A testbed of two nodes per datacenter, healthy and without faults."""
    return testbed_of(nodes_per_dc=NODES_PER_DC)


@pytest.fixture
def multinode_config(multinode_testbed: TestbedCluster) -> Callable[..., dict[str, Any]]:
    """`multinode_config({...})` deep-merges overrides into a config for the testbed."""

    def make(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return merge(config_for(multinode_testbed), overrides or {})

    return make
