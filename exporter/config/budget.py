"""The do-no-harm budget: how many requests a second the exporter may send to a datacenter,
and how many series it may expose."""

from __future__ import annotations

from pydantic import Field

from exporter.config.base import StrictModel


class BudgetConfig(StrictModel):
    """One budget per datacenter, shared by every probe and enforced in the connection.

    The replication sentinels, the latency streams and the reachability probe keep their
    share; the read models get the rest, and their schedules stretch when it is short.
    """

    requests_per_second_per_datacenter: float = Field(default=50.0, gt=0, le=100_000)
    """Requests a second the exporter may send to each datacenter, all probes together."""
    burst: float = Field(default=0.1, gt=0, le=1)
    """How far ahead of the rate requests may bunch up, in seconds of budget."""
    read_model_share: float = Field(default=0.9, gt=0, le=1)
    """The share of what the reserved probes leave that the read models' schedules aim for;
    the rest absorbs their bursts."""
    max_series: int = Field(default=20_000, ge=100, le=10_000_000)
    """At most this many series in one `/metrics`; past it, the series of the read models
    beyond the cap (by name) are dropped, with a log line and `cqrs_exporter_series_dropped`."""
