"""Read-model sync: one probe per declared read model, measured by its declared method.

`checkpoint` (projection lag from a head and a checkpoint query), `audit` (sampled rows
compared by WRITETIME and fields) and `sentinel` (an end-to-end write, polled until it shows)
live in their own modules; this one builds them from the config.
"""

from __future__ import annotations

from exporter.config import SyncMethod
from exporter.results import ProbeOutcome
from probes.base import Probe, ProbeContext
from probes.read_model_audit import AuditProbe
from probes.read_model_base import ReadModelBase, ReadModelGroup
from probes.read_model_checkpoint import CheckpointProbe
from probes.read_model_sentinel import SentinelProbe

METHODS: dict[SyncMethod, type[ReadModelBase]] = {
    SyncMethod.CHECKPOINT: CheckpointProbe,
    SyncMethod.AUDIT: AuditProbe,
    SyncMethod.SENTINEL: SentinelProbe,
}


class ReadModelProbe(ReadModelBase):
    """The registry's entry for read models; `build` makes one method probe per read model."""

    @classmethod
    def build(cls, context: ProbeContext) -> list[Probe]:
        group = ReadModelGroup()
        return [
            METHODS[model.method](context, model, group)
            for model in context.config.read_models
            if model.enabled
        ]

    async def run(self) -> ProbeOutcome:  # never instantiated: build returns method probes
        raise NotImplementedError


__all__ = ["METHODS", "AuditProbe", "CheckpointProbe", "ReadModelProbe", "SentinelProbe"]
