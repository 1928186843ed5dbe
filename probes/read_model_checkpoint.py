"""Checkpoint method: the lag of a projection is the age of the oldest event it has not projected.

Two declared queries are asked each run: the event store's head (the newest event's
position) and the projector's checkpoint. The exporter remembers each head it has seen; the
oldest remembered head past the checkpoint dates the oldest unprojected event it knows of.
Caught up (checkpoint at or past the head) is 0, whether or not events are arriving, so an
idle event store never shows lag. While the projector is stuck the lag grows with the clock.

The reading is a lower bound: events written between two runs are first seen at the next
run, so it may read low by up to one interval (plus the head query's own lag). Ages compare
the exporter's clock with event times, which come from the writer's clock (a TIMEUUID or a
WRITETIME is minted by the client): skew between the two adds to or subtracts from the lag.
"""

from __future__ import annotations

import asyncio
import bisect

from exporter.config import SyncMethod
from exporter.results import ProbeOutcome
from probes.read_model_base import ReadModelBase
from probes.read_model_cql import first_value, position_seconds

MAX_TRACKED_HEADS = 4096


class HeadTracker:
    """Heads seen past the checkpoint, oldest first; thinned evenly when there are too many."""

    def __init__(self, max_entries: int = MAX_TRACKED_HEADS) -> None:
        self.max_entries = max_entries
        self.heads: list[float] = []
        self.seen_anything = False

    def update(self, head: float | None, checkpoint: float | None, now: float) -> float | None:
        """Take one reading; return the lag in seconds (None if no event or checkpoint yet)."""
        if head is not None or checkpoint is not None:
            self.seen_anything = True
        if head is not None and (not self.heads or head > self.heads[-1]):
            self.heads.append(head)
            if len(self.heads) > self.max_entries:
                # Keep the oldest and every other one: resolution degrades, the bound holds.
                self.heads = self.heads[:1] + self.heads[2::2]
                if self.heads[-1] != head:
                    self.heads.append(head)
        if checkpoint is not None:
            del self.heads[: bisect.bisect_right(self.heads, checkpoint)]
        if not self.seen_anything:
            return None
        if not self.heads:
            return 0.0
        return max(0.0, now - self.heads[0])


class CheckpointProbe(ReadModelBase):
    method = SyncMethod.CHECKPOINT

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        assert self.read_model.checkpoint is not None
        self.settings = self.read_model.checkpoint
        self.tracker = HeadTracker()
        self.head: float | None = None
        self.position: float | None = None

    async def _position(self, query: str) -> float | None:
        self.queries += 1
        rows = await self.connection.execute(
            query, datacenter=self.datacenter, consistency=self.read_model.consistency,
            timeout=self.schedule.timeout,
        )
        value = first_value(rows)
        return None if value is None else position_seconds(value)

    async def run(self) -> ProbeOutcome:
        head, checkpoint = await asyncio.gather(
            self._position(self.settings.head_query),
            self._position(self.settings.checkpoint_query),
        )
        now = self.clock.time()
        self.head, self.position = head, checkpoint
        if head is not None:
            self.note_source_time(head, now)
        lag = self.tracker.update(head, checkpoint, now)
        if lag is None:
            return ProbeOutcome.ok("no event and no checkpoint yet")
        self.set_lag(lag)
        return ProbeOutcome.ok()
