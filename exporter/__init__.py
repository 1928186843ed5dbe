"""Prometheus exporter and health endpoints for CQRS systems on multi-datacenter Cassandra."""

__version__ = "0.1.0"

DOCS_URL = "https://github.com/cqrs-cassandra-exporter/cqrs-cassandra-exporter/blob/main/docs"
"""The project's documentation: the status page links it, each alert its runbook under it."""
