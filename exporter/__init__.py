"""Prometheus exporter and health endpoints for CQRS systems on multi-datacenter Cassandra."""

__version__ = "0.1.0"
