"""How the status page writes numbers: each check in its reader's unit, times as ages.

Values arrive in base units (seconds, ratios 0..1); latencies read best in milliseconds,
lags in seconds, ratios in percent. Every function returns plain text, not yet escaped.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from exporter.results import Check

LATENCIES = frozenset({Check.COMMAND_LATENCY_P99, Check.QUERY_LATENCY_P99})
RATIOS = frozenset({Check.SYNC_FAILURE_RATE})


def number(value: float) -> str:
    """About three significant digits, without trailing zeros: 154, 12.3, 0.84, 0.0012."""
    if not math.isfinite(value):
        return "∞" if value > 0 else "-∞" if value < 0 else "not a number"
    size = abs(value)
    if size >= 100:
        text = f"{value:,.0f}"
    elif size >= 10:
        text = f"{value:.1f}"
    elif size >= 1:
        text = f"{value:.2f}"
    elif size == 0:
        return "0"
    else:
        # Three significant digits below 1, e.g. 0.123 or 0.00042.
        digits = 2 - math.floor(math.log10(size))
        text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def unit(check: Check) -> str:
    """The unit a check's values are shown in."""
    if check in LATENCIES:
        return "ms"
    if check in RATIOS:
        return "%"
    if check is Check.WRITE_PATH:
        return ""
    return "s"


def measure(check: Check, value: float) -> str:
    """A value of `check` in base units, written in its unit: `12.3 ms`, `0.4 s`, `0.1 %`."""
    if check is Check.WRITE_PATH:
        return "available" if value >= 1 else "unavailable"
    if check in LATENCIES:
        return f"{number(value * 1000)} ms"
    if check in RATIOS:
        return f"{number(value * 100)} %"
    return f"{number(value)} s"


def duration(seconds: float) -> str:
    """A short duration: `85 ms`, `4.2 s`, `3 min`, `2.5 h`, `3 d`."""
    if seconds < 1:
        return f"{number(seconds * 1000)} ms"
    if seconds < 60:
        return f"{number(seconds)} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86400:.0f} d"


def ago(moment: float, now: float) -> str:
    """How long before `now` a wall-clock `moment` was: `4 s ago`, `just now`."""
    elapsed = now - moment
    if elapsed < 0.5:
        return "just now"
    if elapsed < 60:
        return f"{elapsed:.0f} s ago"
    return f"{duration(elapsed)} ago"


def utc(moment: float) -> str:
    """ISO 8601 in UTC to the second, e.g. 2025-01-31T12:00:00Z."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
