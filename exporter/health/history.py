"""The recent past of each check component, in fixed slots, for the status page's sparklines.

Each evaluation leaves one sample per component; samples fall into slots of `slot` seconds
(by the monotonic clock), and a slot keeps the worst value and the worst status it saw, so a
breach shorter than a slot still shows. A component holds at most `slots` slots, reused as
a ring, whatever the evaluation cadence; one that leaves the snapshot leaves the history.
Pure: no I/O, no event loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from exporter.health.snapshot import ComponentHealth
from exporter.health.verdicts import RANK, Status
from exporter.results import Check

WINDOW = 900.0
"""Seconds of history kept: the page shows the last 15 minutes."""
SLOT = 5.0
"""Seconds per slot: 180 slots over the window."""

LOWER_IS_WORSE = frozenset({Check.WRITE_PATH})
"""Checks whose breach is a value below the threshold (the write path is up at 1)."""

Key = tuple[Check, str]


class Slot(NamedTuple):
    """The worst of one slot's samples. Immutable: a later sample replaces the slot."""

    number: int
    """Which slot: the monotonic time of its samples divided by the slot length, rounded down."""
    value: float | None
    """The worst finite value (the highest; the lowest for the write path), or None."""
    status: Status
    """The worst status (after hysteresis)."""


@dataclass(frozen=True, slots=True)
class Series:
    """One component's slots in the window that ends now, oldest first."""

    first: int
    """The number of the window's oldest slot; slot `first + length - 1` is the current one."""
    length: int
    slots: list[Slot]
    """Only the slots that hold a sample; a slot with no evaluation is missing."""

    def position(self, slot: Slot) -> int:
        """0 for the window's oldest slot, `length - 1` for the current one."""
        return slot.number - self.first


def plotted(item: ComponentHealth) -> float | None:
    """The value a component is judged by (`compared` when set), or None if not finite."""
    value = item.value if item.compared is None else item.compared
    return value if value is not None and math.isfinite(value) else None


def _worse(check: Check, old: float | None, new: float | None) -> float | None:
    if old is None:
        return new
    if new is None:
        return old
    return min(old, new) if check in LOWER_IS_WORSE else max(old, new)


class HealthHistory:
    """Per component, a ring of `round(window / slot)` slots, each the worst of its samples."""

    def __init__(self, window: float = WINDOW, slot: float = SLOT) -> None:
        if slot <= 0 or window < slot:
            raise ValueError("the window must hold at least one slot of positive length")
        self.slot = slot
        self.slots = round(window / slot)
        self._rings: dict[Key, list[Slot | None]] = {}

    @property
    def window(self) -> float:
        return self.slots * self.slot

    def _number(self, now: float) -> int:
        return math.floor(now / self.slot)

    def record(self, components: Iterable[ComponentHealth], now: float) -> None:
        """One evaluation's components at monotonic time `now`; the others are dropped."""
        number = self._number(now)
        index = number % self.slots
        seen: set[Key] = set()
        for item in components:
            key = (item.check, item.component)
            seen.add(key)
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = [None] * self.slots
            value = plotted(item)
            current = ring[index]
            if current is None or current.number != number:
                ring[index] = Slot(number, value, item.status)
                continue
            status = item.status if RANK[item.status] > RANK[current.status] else current.status
            ring[index] = Slot(number, _worse(item.check, current.value, value), status)
        for key in set(self._rings) - seen:
            del self._rings[key]

    def keys(self) -> Iterator[Key]:
        return iter(self._rings)

    def series(self, check: Check, component: str, now: float) -> Series:
        """The slots of the window ending at monotonic time `now` that hold a sample."""
        last = self._number(now)
        first = last - self.slots + 1
        ring = self._rings.get((check, component))
        if ring is None:
            return Series(first, self.slots, [])
        start = first % self.slots
        # The ring read from the window's oldest slot: entry i is slot `first + i` when it
        # was filled in this window, and older (or empty) otherwise.
        ordered = ring[start:] + ring[:start]
        return Series(
            first,
            self.slots,
            [entry for entry in ordered if entry is not None and first <= entry.number <= last],
        )
