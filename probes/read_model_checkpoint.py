"""Checkpoint method: the lag of a projection is the age of the oldest event it has not projected.

Two declared queries are asked each run: the event store's head (the newest event's
position) and the projector's checkpoint. The oldest unprojected event lies after the
checkpoint and no later than the oldest head seen past it. Which end to report depends on
what the exporter has seen:

- traffic flowing: the checkpoint has passed a head the exporter saw more recently than the
  checkpoint's own time, so events kept coming; the oldest unprojected one follows the
  checkpoint closely, and the lag is the checkpoint's age;
- otherwise (after an idle spell, or with no history yet): the lag is the age of the oldest
  head seen past the checkpoint, a lower bound that never invents lag for an idle store.

Caught up (checkpoint at or past the head) is 0, however old the last event. While the
projector is stuck the lag grows with the clock. Ages compare the exporter's clock with
event times, which come from the writer's clock (a TIMEUUID or a WRITETIME is minted by the
client): skew between the two adds to or subtracts from the lag.
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
    """The heads seen past the checkpoint (oldest first, each with when it was last seen)."""

    def __init__(self, max_entries: int = MAX_TRACKED_HEADS) -> None:
        self.max_entries = max_entries
        self.heads: list[list[float]] = []
        """[head position, exporter time it was last seen as the head], by position."""
        self.quiet_until: float | None = None
        """The last time a head was seen that the checkpoint has since reached: nothing
        newer than the checkpoint existed then."""
        self.seen_anything = False

    def update(self, head: float | None, checkpoint: float | None, now: float) -> float | None:
        """Take one reading; return the lag in seconds (None if no event or checkpoint yet)."""
        if head is not None or checkpoint is not None:
            self.seen_anything = True
        if head is not None:
            if self.heads and head == self.heads[-1][0]:
                self.heads[-1][1] = now
            elif not self.heads or head > self.heads[-1][0]:
                self.heads.append([head, now])
                if len(self.heads) > self.max_entries:
                    # Keep the oldest, the newest and every other one: the bound holds.
                    self.heads = [self.heads[0], *self.heads[2:-1:2], self.heads[-1]]
        if checkpoint is not None:
            reached = bisect.bisect_right(self.heads, checkpoint, key=lambda entry: entry[0])
            for _, seen in self.heads[:reached]:
                self.quiet_until = max(self.quiet_until or seen, seen)
            del self.heads[:reached]
        if not self.seen_anything:
            return None
        if not self.heads:
            return 0.0
        flowing = (checkpoint is not None and self.quiet_until is not None
                   and self.quiet_until < checkpoint)
        oldest = checkpoint if flowing else self.heads[0][0]
        assert oldest is not None
        return max(0.0, now - oldest)


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
            self.set_clock_ahead([head], now)
        lag = self.tracker.update(head, checkpoint, now)
        if lag is None:
            return ProbeOutcome.ok("no event and no checkpoint yet")
        self.set_lag(lag)
        return ProbeOutcome.ok()
