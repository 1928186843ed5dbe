"""Latency: how long commands and queries take, from the client's side and from Cassandra's.

The `latency` kind (`probe`) times fixed-rate requests per datacenter (`timing`) into
sliding windows and histograms (`series`): a command into the `command_probe` ring, the
probe's own read of it, and each declared read-model query (`requests`). The
`server_latency` kind (`server`) reads Cassandra's own coordinator latency for those tables.
"""

from __future__ import annotations

from exporter.tables import Table
from probes.latency.probe import LatencyProbe
from probes.latency.requests import COMMANDS
from probes.latency.server import STATEMENTS as SERVER_STATEMENTS
from probes.latency.server import ServerLatencyProbe

TABLES: tuple[Table, ...] = (COMMANDS,)
"""What the latency kind writes."""

__all__ = ["SERVER_STATEMENTS", "TABLES", "LatencyProbe", "ServerLatencyProbe"]
