"""The raw verdict of one reading: its status against the configured threshold and severity.

Everything here is a pure function of a reading and the config; hysteresis and aggregation
build on it (`exporter.health.hysteresis`, `exporter.health.evaluation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from exporter.config import Config
from exporter.results import Check, Observation


class Status(StrEnum):
    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


RANK = {Status.UNKNOWN: 0, Status.UP: 1, Status.DEGRADED: 2, Status.DOWN: 3}
"""DOWN > DEGRADED > UP > UNKNOWN: an aggregate takes the highest rank of its parts."""
BREACHES = frozenset({Status.DEGRADED, Status.DOWN})

UNITS: Mapping[Check, str | None] = {
    Check.WRITE_PATH: None,
    Check.REPLICATION_LAG: "seconds",
    Check.READ_MODEL_SYNC_LAG: "seconds",
    Check.COMMAND_LATENCY_P99: "seconds",
    Check.QUERY_LATENCY_P99: "seconds",
    Check.SYNC_FAILURE_RATE: "ratio",
}


def worst(statuses: Iterable[Status]) -> Status:
    """The aggregate of several statuses; UNKNOWN when there are none."""
    return max(statuses, key=RANK.__getitem__, default=Status.UNKNOWN)


def threshold_for(check: Check, config: Config) -> float | None:
    """The configured threshold in base units; the write path has none (it is up or not)."""
    if check is Check.WRITE_PATH:
        return None
    return float(getattr(config.thresholds, check.value))


class Reason(StrEnum):
    """Why a reading gives no verdict; bounded, safe for bodies."""

    NO_DATA = "no data yet"
    INSUFFICIENT_SAMPLES = "insufficient samples"


def judge(observation: Observation, config: Config) -> Status:
    """The raw status of one reading, before hysteresis.

    The write path is available at value 1 and unavailable at 0; every other check breaches
    when its compared value exceeds the threshold. A breach takes the check's severity.
    """
    value = observation.comparable
    if observation.value is None or value is None or not observation.sufficient:
        return Status.UNKNOWN
    check = observation.check
    if check is Check.WRITE_PATH:
        breached = value < 1
    else:
        threshold = threshold_for(check, config)
        assert threshold is not None
        breached = value > threshold
    if breached:
        return Status(config.health.severities.of(check).value)
    return Status.UP
