"""Replication: how long a write in the write datacenter takes to show in each read one.

The `replication` kind is one probe in the mode the config chooses. In `writer` mode it
writes sentinels and times their visibility on this exporter's clock (`writer`); in
`regional` mode it reads the age of the writer's heartbeat in this exporter's own datacenter
(`heartbeat`). Both read the sentinel row (`rows`) with background pollers (`poller`),
through the datacenter as a whole or each of its replicas (`replicas`), and count failed
reads (`failures`); `tracker` is the writer's bookkeeping. The
`replication_backlog` kind (`backlog`) reads Cassandra's own hints and internode queues.
"""

from __future__ import annotations

from exporter.config.replication import ReplicationConfig, ReplicationMode
from exporter.tables import Table
from probes.base import Probe, ProbeContext
from probes.replication.backlog import STATEMENTS as BACKLOG_STATEMENTS
from probes.replication.backlog import ReplicationBacklogProbe
from probes.replication.heartbeat import HeartbeatProbe
from probes.replication.rows import SENTINELS
from probes.replication.writer import WriterProbe

TABLES: tuple[Table, ...] = (SENTINELS,)
"""What the replication kind writes (a regional exporter only reads it)."""


def replication_probe(context: ProbeContext, settings: ReplicationConfig) -> Probe:
    """The probe for the configured mode: the sentinel writer, or the heartbeat reader."""
    if settings.mode is ReplicationMode.REGIONAL:
        return HeartbeatProbe(context, settings)
    return WriterProbe(context, settings)


__all__ = [
    "BACKLOG_STATEMENTS",
    "TABLES",
    "HeartbeatProbe",
    "ReplicationBacklogProbe",
    "WriterProbe",
    "replication_probe",
]
