"""Sentinel bookkeeping on one monotonic clock: pending, seen, lost, and the lag each implies.

Pure logic, no I/O: the probe tells the tracker when a sentinel was acknowledged and what
each visibility read returned; the tracker answers with the current lag per datacenter.

A sentinel is *seen* in a datacenter once every reader of that datacenter (one, or one per
replica) has read its sequence or a later one. Its visibility is bracketed by the latest
miss (a read sent before it showed, or that failed) and the first hit (a read that returned
it); the estimate is the midpoint, the resolution the bracket's width. With one reader per
replica that is the worst replica's visibility: it is later than every replica's last miss
and earlier than the last first hit.

A datacenter's readers can change (a node joins, leaves or stops holding the row): a reader
that is gone is no longer waited for, and a sentinel only it had not seen is seen.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

_le_label: Callable[[float], str] = floatToGoString
"""A bucket bound as client histograms write it in `le` (the library's function is untyped)."""

RECENT = 256
"""Visibilities kept per datacenter for readers that take them a batch at a time."""

ReaderKey = Hashable
"""Who reads: the datacenter as a whole (None) or one replica of it (its address)."""

BUCKET_GROWTH = 1.1
"""Each visibility bucket is 10 % wider than the one below it."""
VISIBILITY_BUCKETS: tuple[float, ...] = (
    *(float(f"{BUCKET_GROWTH**k:.4g}") for k in range(-80, 26)),
    30.0,
)
"""From 0.5 ms (the same host) to 10.83 s (a stall), every bound 1.1 times the one below and
one exactly on the 1 s threshold, then 30 s (the default sentinel timeout): a
`histogram_quantile` over them lands within 10 % of the value below 10 s, since the
interpolation stays inside one bucket."""


class BucketCounts:
    """A histogram's state: per-bucket counts (not cumulative), a sum and a count."""

    def __init__(self, bounds: Sequence[float] = VISIBILITY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs as Prometheus exposes them, ending with +Inf."""
        result: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self._counts, strict=True):
            running += count
            result.append((_le_label(bound), float(running)))
        return result


@dataclass
class Completed:
    """A sentinel seen in one datacenter."""

    sequence: int
    lag: float
    resolution: float
    acked: float
    """When it was acknowledged (the tracker's clock)."""

    @property
    def earliest(self) -> float:
        """The least its visibility can have been: the bracket's lower end."""
        return max(0.0, self.lag - self.resolution / 2)

    @property
    def latest(self) -> float:
        """The most its visibility can have been: the bracket's upper end."""
        return self.lag + self.resolution / 2


@dataclass
class _Pending:
    sequence: int
    acked: float
    readers: frozenset[ReaderKey]
    """Who must still see it; shrinks when a reader goes away."""
    last_miss: dict[ReaderKey, float] = field(default_factory=dict)
    first_hit: dict[ReaderKey, float] = field(default_factory=dict)

    def complete(self) -> Completed:
        lower = max(self.last_miss.get(r, self.acked) for r in self.readers)
        upper = max(self.first_hit.values())
        return Completed(
            self.sequence, (lower + upper) / 2 - self.acked, upper - lower, self.acked
        )


@dataclass
class TargetState:
    """What is known about one read datacenter."""

    pending: list[_Pending] = field(default_factory=list)
    readers: frozenset[ReaderKey] = frozenset({None})
    """Who reads it now: the datacenter as a whole, or each of its replicas."""
    seen: dict[ReaderKey, int] = field(default_factory=dict)
    """The newest sequence each current reader has returned."""
    lost_unseen_since: float | None = None
    """Acknowledgement time of the oldest lost sentinel no later sentinel has superseded yet."""
    last_seen: Completed | None = None
    """The newest sentinel seen."""
    lost: int = 0
    visibility: BucketCounts = field(default_factory=BucketCounts)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    """The newest seen sentinels' visibilities, oldest first, for windows kept elsewhere."""

    @property
    def estimate(self) -> float | None:
        """The newest seen sentinel's lag."""
        return None if self.last_seen is None else self.last_seen.lag

    @property
    def resolution(self) -> float | None:
        """The width of the newest seen sentinel's bracket."""
        return None if self.last_seen is None else self.last_seen.resolution

    def oldest_unseen(self) -> float | None:
        times = [p.acked for p in self.pending[:1]]
        if self.lost_unseen_since is not None:
            times.append(self.lost_unseen_since)
        return min(times) if times else None


class SentinelTracker:
    """Pending sentinels per read datacenter, and the lag they imply at any moment."""

    def __init__(self, targets: Iterable[str], sentinel_timeout: float) -> None:
        self.targets: dict[str, TargetState] = {dc: TargetState() for dc in targets}
        self.sentinel_timeout = sentinel_timeout
        self.last_ack: float | None = None
        self.latest: int | None = None
        """The sequence of the newest acknowledged sentinel."""

    def add(self, sequence: int, acked: float, readers: dict[str, frozenset[ReaderKey]]) -> None:
        """A sentinel was acknowledged at `acked`; `readers` says who must see it, per target.

        Those are the targets' readers from now on (see `retain`).
        """
        self.last_ack = acked
        self.latest = sequence
        for dc, state in self.targets.items():
            keys = readers.get(dc) or frozenset({None})
            self.retain(dc, keys)
            state.pending.append(_Pending(sequence, acked, keys))

    def retain(self, dc: str, readers: frozenset[ReaderKey]) -> list[Completed]:
        """Make `readers` the datacenter's readers; a reader not among them is forgotten.

        A pending sentinel no longer waits for a forgotten reader: if every remaining one has
        seen it, it is seen (returned, oldest first); if none remains, nothing can see it and
        it is dropped, neither seen nor lost.
        """
        state = self.targets[dc]
        if readers == state.readers:
            return []
        state.readers = readers
        state.seen = {r: s for r, s in state.seen.items() if r in readers}
        kept: list[_Pending] = []
        for p in state.pending:
            remaining = p.readers & readers
            if not remaining:
                continue
            if remaining != p.readers:
                p.readers = remaining
                p.last_miss = {r: t for r, t in p.last_miss.items() if r in remaining}
                p.first_hit = {r: t for r, t in p.first_hit.items() if r in remaining}
            kept.append(p)
        state.pending = kept
        return self._complete(state)

    def wants(self, dc: str, reader: ReaderKey) -> bool:
        """Whether some pending sentinel still waits for this reader."""
        return any(
            reader in p.readers and reader not in p.first_hit for p in self.targets[dc].pending
        )

    def readers(self) -> set[tuple[str, ReaderKey]]:
        """Every (datacenter, reader) some pending sentinel waits for."""
        return {
            (dc, r)
            for dc, state in self.targets.items()
            for p in state.pending
            for r in p.readers
            if r not in p.first_hit
        }

    def observe(
        self, dc: str, reader: ReaderKey, seen: int | None, sent: float, received: float
    ) -> list[Completed]:
        """Record one read: `seen` is our latest sequence it returned, None for a miss or failure.

        Returns the sentinels this read completed, oldest first.
        """
        state = self.targets[dc]
        if seen is not None and reader in state.readers:
            state.seen[reader] = max(seen, state.seen.get(reader, seen))
        for p in state.pending:
            if reader not in p.readers or reader in p.first_hit:
                continue
            if seen is not None and seen >= p.sequence:
                p.first_hit[reader] = received
            elif sent > p.last_miss.get(reader, p.acked):
                p.last_miss[reader] = sent
        return self._complete(state)

    @staticmethod
    def _complete(state: TargetState) -> list[Completed]:
        """Take out the sentinels every reader has seen, oldest first, and account for them."""
        done = [p for p in state.pending if len(p.first_hit) == len(p.readers)]
        if not done:
            return []
        state.pending = [p for p in state.pending if len(p.first_hit) < len(p.readers)]
        # Lost sentinels are older than any pending one: seeing a later one supersedes them.
        state.lost_unseen_since = None
        completed = [p.complete() for p in done]
        for c in completed:
            state.visibility.observe(c.lag)
            state.recent.append(c.lag)
        # A read that returns a sequence sees every older one too: the last done is the newest.
        state.last_seen = completed[-1]
        return completed

    def expire(self, now: float) -> dict[str, int]:
        """Count as lost each sentinel pending for `sentinel_timeout`; return new losses per dc."""
        losses: dict[str, int] = {}
        for dc, state in self.targets.items():
            expired = [p for p in state.pending if now - p.acked >= self.sentinel_timeout]
            if not expired:
                continue
            state.pending = [p for p in state.pending if now - p.acked < self.sentinel_timeout]
            oldest = expired[0].acked
            if state.lost_unseen_since is None or oldest < state.lost_unseen_since:
                state.lost_unseen_since = oldest
            state.lost += len(expired)
            losses[dc] = len(expired)
        return losses

    def lag(self, dc: str, now: float) -> float | None:
        """The larger of the oldest unseen sentinel's age and the last completed sentinel's
        lag; None when unknown.

        The oldest unseen sentinel's age alone dips each time a sentinel is seen: under a
        steady 1.5 s delay with a sentinel a second, it reads 0.5 s just after each sighting.
        The last completed lag holds the level between sightings; an unseen sentinel older
        than it shows a stall growing. With nothing unseen and no sentinel acknowledged
        within `sentinel_timeout` (the write datacenter refuses them), the old estimate says
        nothing about now: unknown.
        """
        state = self.targets[dc]
        oldest = state.oldest_unseen()
        if oldest is not None:
            return max(0.0, now - oldest, state.estimate or 0.0)
        if self.last_ack is None or now - self.last_ack > self.sentinel_timeout:
            return None
        return state.estimate

    def bounds(self, dc: str, now: float) -> tuple[float, float | None] | None:
        """What the datacenter's staleness can be: (least, most); most is None when no
        sentinel has been seen there yet. None when the lag is unknown.

        While a sentinel is unseen, the latest read that missed it was sent after it had
        been acknowledged for some time: the staleness was at least that long (0 before any
        such read). It is at most the age of the newest sentinel seen, which is readable.
        With nothing unseen it is the newest seen sentinel's bracket, last miss to first hit.
        """
        if self.lag(dc, now) is None:
            return None
        state = self.targets[dc]
        seen = state.last_seen
        oldest = state.oldest_unseen()
        if oldest is None:
            if seen is None:
                return None
            return seen.earliest, seen.latest
        if state.pending:
            first = state.pending[0]
            waiting = [r for r in first.readers if r not in first.first_hit]
            missed = max((first.last_miss.get(r, first.acked) for r in waiting), default=oldest)
        else:  # only lost sentinels, no longer read: their age
            missed = now
        least = max(0.0, missed - oldest)
        if seen is None:
            return least, None
        return least, max(least, now - seen.acked)

    def caught_up(self, dc: str) -> int | None:
        """How many of the datacenter's readers have returned the newest sentinel (or later).

        None before the first sentinel is acknowledged.
        """
        if self.latest is None:
            return None
        state = self.targets[dc]
        return sum(1 for r in state.readers if state.seen.get(r, self.latest - 1) >= self.latest)
