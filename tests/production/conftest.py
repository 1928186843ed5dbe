"""Fixtures of the production-shaped tier: several nodes per datacenter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testbed import TestbedCluster
from tests.support import config_for, merge

NODES_PER_DC = 2


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
