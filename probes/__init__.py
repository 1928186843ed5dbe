"""The probes, and the registry from probe kind to probe class."""

from __future__ import annotations

from probes.base import Probe, ProbeContext
from probes.latency import LatencyProbe
from probes.reachability import ReachabilityProbe
from probes.read_models import ReadModelProbe
from probes.replication import ReplicationProbe
from probes.replication_backlog import ReplicationBacklogProbe
from probes.server_latency import ServerLatencyProbe

REGISTRY: dict[str, type[Probe]] = {
    probe.kind: probe
    for probe in (
        ReachabilityProbe,
        ReplicationProbe,
        ReplicationBacklogProbe,
        LatencyProbe,
        ServerLatencyProbe,
        ReadModelProbe,
    )
}


def build_probes(context: ProbeContext) -> list[Probe]:
    """Every enabled probe instance for the config, in registry order."""
    return [probe for cls in REGISTRY.values() for probe in cls.build(context)]


__all__ = ["REGISTRY", "Probe", "ProbeContext", "build_probes"]
