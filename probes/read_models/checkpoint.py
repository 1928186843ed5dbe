"""Checkpoint method: the lag of a projection is the age of the oldest event it has not projected.

Two declared queries are asked each run: the event store's head (the newest event's
position) and the projector's checkpoint. The exporter remembers each head it sees and when.
The oldest unprojected event came after the checkpoint, and after the last time the exporter
saw a head the checkpoint has since reached (nothing newer existed then); and no later than
the oldest head seen past the checkpoint. Which end to report depends on the traffic:

- flowing (each run saw a new head): the oldest unprojected event follows that first bound
  closely, so the lag is its age;
- after an idle spell (the same head seen in two runs or more), or with no history yet: the
  lag is the age of the oldest head seen past the checkpoint, a lower bound that never
  invents lag for an idle store.

Caught up (checkpoint at or past the head) is 0, however old the last event. While the
projector is stuck the lag grows with the clock. Ages compare the exporter's clock with
event times, which come from the writer's clock (a TIMEUUID or a WRITETIME is minted by the
client): skew between the two adds to or subtracts from the lag.
"""

from __future__ import annotations

import asyncio
import bisect

from exporter.config import ReadModelConfig, SyncMethod
from exporter.results import ProbeOutcome
from probes.base import ProbeContext
from probes.read_models.base import ReadModelBase
from probes.read_models.cql import first_value, position_seconds

MAX_TRACKED_HEADS = 4096


class HeadTracker:
    """The heads seen past the checkpoint, oldest first, with when each was seen."""

    def __init__(self, interval: float = 1.0, max_entries: int = MAX_TRACKED_HEADS) -> None:
        self.interval = interval
        self.max_entries = max_entries
        self.heads: list[list[float]] = []
        """[position, first seen, last seen] of each head, by position."""
        self.reached: list[float] | None = None
        """The newest head the checkpoint has reached: nothing newer existed when it was last
        seen, and seen more than once it marks an idle spell."""
        self.seen_anything = False

    def update(self, head: float | None, checkpoint: float | None, now: float) -> float | None:
        """Take one reading; return the lag in seconds (None if no event or checkpoint yet)."""
        if head is not None or checkpoint is not None:
            self.seen_anything = True
        if head is not None:
            if self.heads and head == self.heads[-1][0]:
                self.heads[-1][2] = now
            elif self.reached is not None and head == self.reached[0]:
                self.reached[2] = now  # still the head: the store is idle
            elif not self.heads or head > self.heads[-1][0]:
                self.heads.append([head, now, now])
                if len(self.heads) > self.max_entries:
                    # Keep the oldest, the newest and every other one: the bounds hold.
                    self.heads = [self.heads[0], *self.heads[2:-1:2], self.heads[-1]]
        if checkpoint is not None:
            reached = bisect.bisect_right(self.heads, checkpoint, key=lambda entry: entry[0])
            if reached:
                self.reached = self.heads[reached - 1]
                del self.heads[:reached]
        if not self.seen_anything:
            return None
        if not self.heads:
            return 0.0
        return max(0.0, now - self._oldest_unprojected(checkpoint))

    def _oldest_unprojected(self, checkpoint: float | None) -> float:
        """When the oldest unprojected event was written, as well as can be told."""
        oldest_seen, oldest_first_seen, _ = self.heads[0]
        if checkpoint is None or self.reached is None:
            return oldest_seen  # no history: the lower bound
        _, first_seen, last_seen = self.reached
        idle = last_seen > first_seen
        # A gap in the readings (failed runs) leaves the traffic in between unknown.
        watched = oldest_first_seen - last_seen <= 1.5 * self.interval
        if (idle and last_seen >= checkpoint) or not watched:
            return oldest_seen  # new events after an idle spell: date them by themselves
        return min(max(checkpoint, last_seen), oldest_seen)


class CheckpointProbe(ReadModelBase):
    method = SyncMethod.CHECKPOINT

    def __init__(self, context: ProbeContext, read_model: ReadModelConfig) -> None:
        super().__init__(context, read_model)
        assert self.read_model.checkpoint is not None
        self.settings = self.read_model.checkpoint
        self.tracker = HeadTracker(self.schedule.interval)
        self.head: float | None = None
        self.position: float | None = None

    def expected_requests(self) -> dict[str, float]:
        return {self.datacenter: 2.0 / self.read_model.interval}  # the head and the checkpoint

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
