"""A local multi-datacenter Apache Cassandra cluster for tests and demos."""

from testbed.cluster import Node, NodeStatus, TestbedCluster
from testbed.errors import TestbedError
from testbed.jars import ensure_jars

__all__ = ["Node", "NodeStatus", "TestbedCluster", "TestbedError", "ensure_jars"]
