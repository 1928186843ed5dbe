"""The sparkline's geometry: slot columns, value scaling, the threshold line, edge cases."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from exporter.health.history import Series, Slot
from exporter.health.verdicts import Status
from exporter.status.sparkline import (
    DECI,
    HEADROOM,
    STATUS_COLOURS,
    THRESHOLD_COLOUR,
    Geometry,
    sparkline,
)


def series(*values: float | None, first: int = 100, length: int = 12) -> Series:
    """Slots `first`, `first + 1`... with these values, all UP; None leaves the slot out."""
    return Series(
        first,
        length,
        [Slot(first + i, v, Status.UP) for i, v in enumerate(values) if v is not None],
    )


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def polylines(svg: ET.Element) -> list[list[tuple[float, float]]]:
    """Each value polyline's points in pixels."""
    lines = []
    for line in svg.iter("polyline"):
        assert line.get("transform") == f"scale({1 / DECI:g})"
        pairs = [pair.split(",") for pair in (line.get("points") or "").split()]
        lines.append([(int(x) / DECI, int(y) / DECI) for x, y in pairs])
    return lines


def threshold_y(svg: ET.Element) -> float:
    (line,) = [e for e in svg.iter("line") if e.get("class") == "threshold"]
    assert line.get("stroke") == THRESHOLD_COLOUR
    assert line.get("y1") == line.get("y2")
    return float(line.get("y1") or "nan")


def test_the_threshold_line_sits_where_its_value_would() -> None:
    g = Geometry.of([0.5], 12, 1.0)
    assert g.high == pytest.approx(HEADROOM)
    svg = parse(sparkline(series(0.5), 1.0, "lag"))
    expected = g.bottom - (1.0 / HEADROOM) * (g.bottom - g.top)
    assert threshold_y(svg) == int(expected) + 0.5
    assert abs(threshold_y(svg) - g.y(1.0)) <= 1


def test_values_above_the_threshold_scale_the_axis_and_the_highest_stays_in_the_plot() -> None:
    g = Geometry.of([0.5, 4.0], 12, 1.0)
    assert g.high == pytest.approx(4.0 * HEADROOM)
    assert g.top < g.y(4.0) < g.y(1.0) < g.y(0.5) < g.bottom
    assert g.y(0.0) == g.bottom
    svg = parse(sparkline(series(0.5, 4.0), 1.0, "lag"))
    (line,) = polylines(svg)
    assert threshold_y(svg) > line[1][1]  # the breach is drawn above the threshold line
    assert line[0][1] > threshold_y(svg)


def test_slots_are_columns_from_the_oldest_to_the_current() -> None:
    g = Geometry.of([], 12, None)
    assert g.x(0) == pytest.approx(g.left + g.cell / 2)
    assert g.x(11) == pytest.approx(g.right - g.cell / 2)
    assert g.cell == pytest.approx((g.right - g.left) / 12)
    (line,) = polylines(parse(sparkline(series(*[0.1] * 12), 1.0, "lag")))
    assert len(line) == 12
    for position, (x, y) in enumerate(line):
        assert x == pytest.approx(g.x(position), abs=0.1)
        assert y == pytest.approx(Geometry.of([0.1], 12, 1.0).y(0.1), abs=0.1)


def test_points_land_on_their_slot_even_when_the_window_starts_later() -> None:
    s = Series(500, 12, [Slot(509, 0.3, Status.UP), Slot(510, 0.6, Status.UP)])
    g = Geometry.of([0.3, 0.6], 12, 1.0)
    (line,) = polylines(parse(sparkline(s, 1.0, "lag")))
    assert [x for x, _ in line] == [pytest.approx(g.x(9), abs=0.1), pytest.approx(g.x(10), abs=0.1)]
    assert [y for _, y in line] == [pytest.approx(g.y(v), abs=0.1) for v in (0.3, 0.6)]


def test_a_missing_slot_breaks_the_line() -> None:
    svg = parse(sparkline(series(0.1, 0.2, None, 0.3, 0.4), 1.0, "lag"))
    lines = polylines(svg)
    assert [len(line) for line in lines] == [2, 2]
    g = Geometry.of([0.1, 0.2, 0.3, 0.4], 12, 1.0)
    expected = [(g.x(p), g.y(v)) for p, v in [(0, 0.1), (1, 0.2), (3, 0.3), (4, 0.4)]]
    for (x, y), (ex, ey) in zip(lines[0] + lines[1], expected, strict=True):
        assert (x, y) == (pytest.approx(ex, abs=0.1), pytest.approx(ey, abs=0.1))


def test_a_slot_without_a_value_breaks_the_line() -> None:
    s = Series(
        0, 12, [Slot(0, 0.1, Status.UP), Slot(1, None, Status.UNKNOWN), Slot(2, 0.2, Status.UP)]
    )
    # Two lone slots: two dots, each a zero-length line.
    dots = polylines(parse(sparkline(s, 1.0, "lag")))
    assert [len(set(dot)) for dot in dots] == [1, 1]


def test_an_empty_series_draws_the_threshold_and_says_there_is_no_data() -> None:
    svg = parse(sparkline(series(), 0.05, "latency"))
    assert not polylines(svg)
    assert [t.text for t in svg.iter("text")] == ["no data yet"]
    g = Geometry.of([], 12, 0.05)
    assert threshold_y(svg) == int(g.y(0.05)) + 0.5
    assert g.top < threshold_y(svg) < g.bottom


def test_a_single_slot_is_a_dot() -> None:
    svg = parse(sparkline(series(None, None, 0.4), 1.0, "lag"))
    ((first, second),) = polylines(svg)
    assert first == second
    (line,) = svg.iter("polyline")
    assert line.get("stroke-linecap") == "round"
    assert first[0] == pytest.approx(Geometry.of([0.4], 12, 1.0).x(2), abs=0.1)


def test_all_zero_values_and_no_threshold_still_scale() -> None:
    g = Geometry.of([0.0, 0.0], 12, None)
    assert (g.low, g.high) == (0.0, 1.0)
    assert g.y(0.0) == g.bottom
    svg = parse(sparkline(series(0.0, 0.0), None, "rate"))
    assert not [e for e in svg.iter("line")]
    assert [y for _, y in polylines(svg)[0]] == [g.bottom, g.bottom]


def test_negative_values_lower_the_baseline() -> None:
    g = Geometry.of([-1.0, 1.0], 12, 2.0)
    assert g.low == -1.0 and g.y(-1.0) == g.bottom
    assert g.bottom > g.y(0.0) > g.y(2.0) > g.top


def test_the_band_under_the_plot_shows_each_slot_status() -> None:
    s = Series(
        0,
        12,
        [
            Slot(0, 0.1, Status.UP),
            Slot(1, 0.1, Status.UP),
            Slot(2, 2.0, Status.DEGRADED),
            Slot(4, 0.1, Status.UP),
        ],
    )
    g = Geometry.of([0.1, 2.0], 12, 1.0)
    bands = [e for e in parse(sparkline(s, 1.0, "lag")).iter("rect") if e.get("class") == "band"]
    assert [(b.get("fill"), float(b.get("width") or 0)) for b in bands] == [
        (STATUS_COLOURS[Status.UP], pytest.approx(2 * g.cell, abs=0.05)),
        (STATUS_COLOURS[Status.DEGRADED], pytest.approx(g.cell, abs=0.05)),
        (STATUS_COLOURS[Status.UP], pytest.approx(g.cell, abs=0.05)),
    ]
    assert float(bands[2].get("x") or 0) == pytest.approx(g.left + 4 * g.cell, abs=0.05)


def test_the_label_is_escaped_and_names_the_image() -> None:
    text = sparkline(series(0.1), 1.0, '<script>"x" & y</script>')
    assert "<script>" not in text
    svg = parse(text)
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == '<script>"x" & y</script>'
    assert svg.findtext("title") == '<script>"x" & y</script>'
