"""An inline SVG sparkline of one component's recent slots, with its threshold as a line.

The geometry is a pure function of the slots, the window's length and the threshold: each
slot is a column of equal width; the value axis runs from zero (or the lowest value, if
negative) to a little above the highest of the values and the threshold, so the threshold
line is always inside the plot. Under the plot a band shows each slot's status in the
status's colour; the page says the current status in words next to it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from html import escape

from exporter.health.history import Series
from exporter.health.verdicts import Status

WIDTH = 300
HEIGHT = 40
PAD = 2
BAND = 4
"""Height of the status band under the plot, in pixels."""
GAP = 2
HEADROOM = 1.2
"""The value axis ends this far above the highest of the values and the threshold."""
DECI = 10
"""Polylines are written in tenths of a pixel and drawn scaled down by as much."""

THRESHOLD_COLOUR = "#9333ea"
LINE_COLOUR = "#1f2937"
BACKGROUND = "#f8fafc"
STATUS_COLOURS = {
    Status.UP: "#16a34a",
    Status.DEGRADED: "#d97706",
    Status.DOWN: "#dc2626",
    Status.UNKNOWN: "#cbd5e1",
}


class Geometry:
    """Where slots and values fall in a sparkline of `width` by `height` pixels.

    Slot positions run from 0 (the window's oldest) to `slots - 1`; values from `low`, on
    the plot's baseline, to `high`, on its top edge.
    """

    def __init__(
        self, slots: int, low: float, high: float, width: int = WIDTH, height: int = HEIGHT
    ) -> None:
        self.slots = max(slots, 1)
        self.low = low
        self.high = high
        self.width = width
        self.height = height
        self.left = float(PAD)
        self.right = float(width - PAD)
        self.top = float(PAD)
        self.bottom = float(height - BAND - GAP)
        self.cell = (self.right - self.left) / self.slots
        """The width of one slot's column."""
        self.scale = (self.bottom - self.top) / (high - low)
        """Pixels per unit of value."""

    @classmethod
    def of(
        cls,
        values: Iterable[float],
        slots: int,
        threshold: float | None,
        width: int = WIDTH,
        height: int = HEIGHT,
    ) -> Geometry:
        drawn = list(values)
        if threshold is not None:
            drawn.append(threshold)
        low = min([0.0, *drawn])
        high = max([0.0, *drawn])
        span = (high - low) * HEADROOM
        if span <= 0:
            span = abs(high) or 1.0
        return cls(slots, low, low + span, width, height)

    def x(self, position: int) -> float:
        """The centre of a slot's column."""
        return self.left + (position + 0.5) * self.cell

    def y(self, value: float) -> float:
        y = self.bottom - (value - self.low) * self.scale
        return min(max(y, self.top), self.bottom)

    def line_y(self, value: float) -> float:
        """`y` on a pixel row's centre, so a one-pixel horizontal line stays crisp."""
        return int(self.y(value)) + 0.5

    def columns(self) -> tuple[int, ...]:
        """Each slot's `x` in tenths of a pixel, rounded down."""
        return _columns(self.slots, self.left, self.cell)

    def deci_y(self, value: float) -> int:
        """`y` in tenths of a pixel, rounded down; unclamped, for values within the axis."""
        return int((self.bottom - (value - self.low) * self.scale) * DECI)


@functools.cache
def _columns(slots: int, left: float, cell: float) -> tuple[int, ...]:
    return tuple(int((left + (position + 0.5) * cell) * DECI) for position in range(slots))


@functools.cache
def _prefixes(slots: int, left: float, cell: float) -> tuple[str, ...]:
    """`columns` written as the start of an `x,y` pair."""
    return tuple(f"{x}," for x in _columns(slots, left, cell))


@functools.cache
def _rows(height: int) -> tuple[str, ...]:
    """Every `y` in tenths of a pixel, written: looked up, not formatted, per point."""
    return tuple(str(y) for y in range(height * DECI + 1))


def _runs(series: Series, g: Geometry) -> Iterator[list[str]]:
    """The `x,y` pairs, in tenths of a pixel, of each run of consecutive slots with a value;
    a missing slot or one without a value breaks a run.

    `columns` and `deci_y` inlined and looked up, since a page draws thousands of points.
    """
    xs = _prefixes(g.slots, g.left, g.cell)
    ys = _rows(g.height)
    scale = g.scale * DECI
    base = g.bottom * DECI + g.low * scale
    first = series.first
    slots = series.slots
    values = [slot.value for slot in slots if slot.value is not None]
    if slots and len(values) == len(slots) == slots[-1].number - slots[0].number + 1:
        # The usual case, one unbroken run, written in two comprehensions.
        start = slots[0].number - first
        columns = xs[start : start + len(values)]
        yield list(map(str.__add__, columns, [ys[int(base - v * scale)] for v in values]))
        return
    run: list[str] = []
    expected = None
    for number, value, _ in slots:
        if value is None or number != expected:
            if run:
                yield run
                run = []
            if value is None:
                continue
        run.append(xs[number - first] + ys[int(base - value * scale)])
        expected = number + 1
    if run:
        yield run


def _bands(series: Series) -> Iterator[tuple[int, int, Status]]:
    """(first position, slot count, status) of each run of adjacent slots in one status."""
    first = series.first
    start = end = 0
    status: Status | None = None
    for number, _, current in series.slots:
        if current is status and number == end:
            end += 1
            continue
        if status is not None:
            yield start - first, end - start, status
        start, end, status = number, number + 1, current
    if status is not None:
        yield start - first, end - start, status


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(series: Series, threshold: float | None, label: str) -> str:
    """The `<svg>` element for `series`, with `threshold` (if any) as a dashed line.

    `label` names what is drawn, for assistive technology and as a tooltip; it is escaped.
    """
    values = [slot.value for slot in series.slots if slot.value is not None]
    g = Geometry.of(values, series.length, threshold)
    text = escape(label)
    parts = [
        f'<svg class="spark" width="{g.width}" height="{g.height}" '
        f'viewBox="0 0 {g.width} {g.height}" role="img" aria-label="{text}">'
        f"<title>{text}</title>"
        f'<rect width="{g.width}" height="{_n(g.bottom + 1)}" fill="{BACKGROUND}"/>'
    ]
    band_y = g.height - BAND
    for position, count, status in _bands(series):
        parts.append(
            f'<rect class="band" x="{_n(g.left + position * g.cell)}" y="{band_y}" '
            f'width="{_n(count * g.cell)}" height="{BAND}" fill="{STATUS_COLOURS[status]}"/>'
        )
    for run in _runs(series, g):
        # A lone slot is drawn as a dot: a zero-length line with round caps, a little wider.
        points, width = (" ".join(run), 1.5) if len(run) > 1 else (f"{run[0]} {run[0]}", 3.0)
        parts.append(
            f'<polyline class="value" points="{points}" transform="scale({1 / DECI:g})" '
            f'fill="none" stroke="{LINE_COLOUR}" stroke-width="{width * DECI:g}" '
            'stroke-linejoin="round" stroke-linecap="round"/>'
        )
    if not values:
        parts.append(
            f'<text x="{g.width // 2}" y="{_n(g.bottom / 2 + 4)}" text-anchor="middle" '
            'font-size="11" fill="#64748b">no data yet</text>'
        )
    if threshold is not None:
        # Drawn last, over the values, so it stays visible where a value runs along it.
        line = _n(g.line_y(threshold))
        parts.append(
            f'<line class="threshold" x1="{_n(g.left)}" y1="{line}" x2="{_n(g.right)}" '
            f'y2="{line}" '
            f'stroke="{THRESHOLD_COLOUR}" stroke-width="1" stroke-dasharray="6 3" '
            'shape-rendering="crispEdges"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
