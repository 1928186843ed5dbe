"""Hysteresis: how one component's status follows its raw readings.

It counts a component's *new* readings (one per completed probe run), not evaluations, so
neither the request rate nor the evaluation cadence changes its meaning.
"""

from __future__ import annotations

from collections import deque

from exporter.health.verdicts import BREACHES, RANK, Status


class Hysteresis:
    """One component's state: it moves into a breach only after `raise_after` consecutive
    readings at least that bad, and out of one only after `clear_after` readings better.

    Moves between UP and UNKNOWN (neither a breach) take effect at once.
    """

    def __init__(self, raise_after: int, clear_after: int, since: float) -> None:
        self.raise_after = raise_after
        self.clear_after = clear_after
        self.status = Status.UNKNOWN
        self.since = since
        self._recent: deque[int] = deque(maxlen=max(raise_after, clear_after))

    def step(self, raw: Status, now: float) -> bool:
        """Take one new reading; return True when the status changed."""
        self._recent.append(RANK[raw])
        current = RANK[self.status]
        target: int | None = None
        if len(self._recent) >= self.raise_after:
            # The worst level that every one of the last N readings reached.
            floor = min(list(self._recent)[-self.raise_after :])
            if floor > current and floor >= RANK[Status.DEGRADED]:
                target = floor
        if target is None and self.status in BREACHES and len(self._recent) >= self.clear_after:
            # The worst level among the last M readings, if all were better than now.
            ceiling = max(list(self._recent)[-self.clear_after :])
            if ceiling < current:
                target = ceiling
        if target is None and self.status not in BREACHES and raw not in BREACHES:
            target = RANK[raw]
        if target is None or target == current:
            return False
        self.status = next(s for s, r in RANK.items() if r == target)
        self.since = now
        return True
