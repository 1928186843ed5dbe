"""How the status page writes values: each check in its unit, durations and ages."""

from __future__ import annotations

import math

import pytest

from exporter.results import Check
from exporter.status.units import ago, duration, measure, number, unit


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (1234.5, "1,234"),
        (154.4, "154"),
        (12.34, "12.3"),
        (50.0, "50"),
        (1.0, "1"),
        (0.84, "0.84"),
        (0.1, "0.1"),
        (0.00042, "0.00042"),
        (0.012345, "0.0123"),
        (-2.5, "-2.5"),
        (math.inf, "∞"),
    ],
)
def test_numbers_have_about_three_significant_digits(value: float, text: str) -> None:
    assert number(value) == text


@pytest.mark.parametrize(
    ("check", "value", "text"),
    [
        (Check.QUERY_LATENCY_P99, 0.0123, "12.3 ms"),
        (Check.COMMAND_LATENCY_P99, 0.1, "100 ms"),
        (Check.QUERY_LATENCY_P99, 0.0001, "0.1 ms"),
        (Check.REPLICATION_LAG, 0.25, "0.25 s"),
        (Check.READ_MODEL_SYNC_LAG, 5.0, "5 s"),
        (Check.SYNC_FAILURE_RATE, 0.001, "0.1 %"),
        (Check.SYNC_FAILURE_RATE, 0.0, "0 %"),
        (Check.WRITE_PATH, 1.0, "available"),
        (Check.WRITE_PATH, 0.0, "unavailable"),
    ],
)
def test_each_check_in_its_unit(check: Check, value: float, text: str) -> None:
    assert measure(check, value) == text
    assert text.endswith(unit(check)) or check is Check.WRITE_PATH


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0125, "12.5 ms"),
        (4.2, "4.2 s"),
        (180, "3 min"),
        (9000, "2.5 h"),
        (7200, "2 h"),
        (3 * 86400, "3 d"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_ages() -> None:
    assert ago(100.0, 100.2) == "just now"
    assert ago(100.0, 142.0) == "42 s ago"
    assert ago(100.0, 400.0) == "5 min ago"
