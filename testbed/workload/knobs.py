"""What the workload is told to do: its rate, its sync mode, and what its syncs get wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from testbed.workload.faults import Delay, FailureKind


class SyncMode(StrEnum):
    IN_REQUEST = "in-request"
    ASYNC = "async"
    PROJECTION = "projection"


@dataclass
class Knobs:
    """What the workload does; change any field while it runs."""

    rate: float = 10.0
    """Commands per second, at fixed intended start times."""
    mode: SyncMode = SyncMode.IN_REQUEST
    delay: Delay = field(default_factory=Delay)
    """How long a sync waits: each asynchronous sync (async mode), or how old an event must
    be before the projector takes it (projection mode)."""
    failure_rate: float = 0.0
    """Fraction of read-model writes that fail."""
    failure_kind: FailureKind = FailureKind.DROP
    update_share: float = 0.0
    """Fraction of commands that change the status of a recent order instead of creating one."""
