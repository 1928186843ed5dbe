"""The testbed's Cassandra cluster: one node per datacenter, on loopback addresses.

`TestbedCluster` (lifecycle) starts, inspects, pauses, kills and stops it; a `Node` is
one server (node); the rest is how it gets there: settings and their checks (settings),
ports (ports), node folders and configuration (files), server processes (launch), the
ring agreement a start waits for (ring), the state file other processes read (state)
and nodetool (nodetool).
"""

from testbed.cluster.lifecycle import TestbedCluster
from testbed.cluster.node import Node, NodeStatus
from testbed.cluster.settings import (
    DEFAULT_DATACENTERS,
    DEFAULT_HEAP,
    default_base_dir,
    default_net,
    default_start_timeout,
    repo_root,
)

__all__ = [
    "DEFAULT_DATACENTERS",
    "DEFAULT_HEAP",
    "Node",
    "NodeStatus",
    "TestbedCluster",
    "default_base_dir",
    "default_net",
    "default_start_timeout",
    "repo_root",
]
