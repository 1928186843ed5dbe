"""Read-model sync: one probe per declared read model, measured by its declared method.

`checkpoint` (projection lag from a head and a checkpoint query), `audit` (sampled rows
compared by WRITETIME and fields) and `sentinel` (an end-to-end write, polled until it shows)
each have their module; `base` is what every method probe keeps and exports, `cql` how the
declared CQL's answers are read.
"""

from __future__ import annotations

from exporter.config import ReadModelConfig, SyncMethod
from probes.base import Probe, ProbeContext
from probes.read_models.audit import AuditProbe
from probes.read_models.base import ReadModelBase
from probes.read_models.checkpoint import CheckpointProbe
from probes.read_models.sentinel import SentinelProbe

METHODS: dict[SyncMethod, type[ReadModelBase]] = {
    SyncMethod.CHECKPOINT: CheckpointProbe,
    SyncMethod.AUDIT: AuditProbe,
    SyncMethod.SENTINEL: SentinelProbe,
}


def read_model_probe(context: ProbeContext, read_model: ReadModelConfig) -> Probe:
    """The probe of the read model's method."""
    return METHODS[read_model.method](context, read_model)


__all__ = [
    "METHODS",
    "AuditProbe",
    "CheckpointProbe",
    "ReadModelBase",
    "SentinelProbe",
    "read_model_probe",
]
