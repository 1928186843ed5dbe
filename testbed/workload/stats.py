"""The workload's own record of its commands, syncs and events."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from testbed.workload.faults import Fate
from testbed.workload.schema import READ_MODEL_TABLES


@dataclass
class WorkloadStats:
    """Ground truth: what the workload did, for tests to compare with what was measured."""

    commands: int = 0
    command_errors: int = 0
    skipped: int = 0
    """Commands not started because too many were in flight."""
    fates: dict[str, Counter[str]] = field(
        default_factory=lambda: {table: Counter() for table in READ_MODEL_TABLES}
    )
    events_appended: int = 0
    events_projected: int = 0
    events_projected_late: int = 0
    """Events a sweep found behind the checkpoint (acknowledged after it passed them)."""
    sync_errors: int = 0
    sync_lags: deque[tuple[float, str, float]] = field(default_factory=lambda: deque(maxlen=20_000))
    """(wall time, table, lag) of recent read-model writes: the time from the start of the
    write-side write to the start of the read-model write, i.e. the WRITETIME difference."""

    def record(self, table: str, fate: Fate) -> None:
        self.fates[table][fate.value] += 1

    def true_lags(self, since: float = 0.0, table: str | None = None) -> list[float]:
        """The actual sync lags of read-model writes made at or after `since` (wall time)."""
        return [lag for at, name, lag in list(self.sync_lags)
                if at >= since and (table is None or name == table)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "commands": self.commands,
            "command_errors": self.command_errors,
            "skipped": self.skipped,
            "events_appended": self.events_appended,
            "events_projected": self.events_projected,
            "events_projected_late": self.events_projected_late,
            "sync_errors": self.sync_errors,
            "read_model_writes": {t: dict(c) for t, c in self.fates.items()},
        }
