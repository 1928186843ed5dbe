"""What a probe run produces: an outcome for the run, observations for the health checks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FailureReason(StrEnum):
    """The bounded set of reasons a probe run or a request fails.

    `auth`, `unauthorized` and `tls` are access problems: no retry mends them, a change to
    the config, the role or its grants does (`exporter.connection.classify` says which).
    """

    TIMEOUT = "timeout"
    """No answer in time."""
    UNAVAILABLE = "unavailable"
    """Too few replicas, or no host could be reached."""
    AUTH = "auth"
    """Cassandra refused the credentials (`cluster.auth`)."""
    UNAUTHORIZED = "unauthorized"
    """The role lacks a permission (a GRANT) the request needs."""
    TLS = "tls"
    """The TLS handshake failed (`cluster.tls`)."""
    ERROR = "error"
    """Anything else; the log says what."""


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """The result of one probe run. `detail` goes to the log, never to a label or a body."""

    success: bool
    reason: FailureReason | None = None
    detail: str = ""

    @classmethod
    def ok(cls, detail: str = "") -> ProbeOutcome:
        return cls(True, None, detail)

    @classmethod
    def failed(cls, reason: FailureReason, detail: str) -> ProbeOutcome:
        return cls(False, reason, detail)


class Check(StrEnum):
    """The health checks; their thresholds live in `Thresholds` under the same names."""

    WRITE_PATH = "write_path"
    REPLICATION_LAG = "replication_lag"
    READ_MODEL_SYNC_LAG = "read_model_sync_lag"
    COMMAND_LATENCY_P99 = "command_latency_p99"
    QUERY_LATENCY_P99 = "query_latency_p99"
    SYNC_FAILURE_RATE = "sync_failure_rate"


@dataclass(frozen=True, slots=True)
class Observation:
    """A probe's current reading for one health check component.

    `value` is what is shown (seconds, or a ratio); `compared` is what the threshold is
    compared with when it differs from `value` (e.g. the lower bound of a failure rate's
    confidence interval). `value=None` means no data yet; `sufficient=False` means too few
    samples for a verdict.
    """

    check: Check
    component: str
    value: float | None
    compared: float | None = None
    samples: int | None = None
    sufficient: bool = True

    @property
    def comparable(self) -> float | None:
        return self.value if self.compared is None else self.compared
