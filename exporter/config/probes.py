"""How often each probe runs, and for how long at most."""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator

from exporter.config.base import Duration, StrictModel, format_duration


class ProbeSchedule(StrictModel):
    """Every probe has these; a run is cut off at `timeout`, which is shorter than `interval`."""

    enabled: bool = True
    """Run this probe."""
    interval: Duration = 5.0
    """How often the probe runs."""
    timeout: Duration = 2.0
    """A run still going after this long fails with reason `timeout`."""

    timeout_may_outlast_interval: ClassVar[bool] = False
    """Whether a run may go on past its next due time (which is then skipped and counted in
    `cqrs_probe_skipped_runs_total`), instead of the timeout being shorter than the interval."""

    @model_validator(mode="after")
    def _timeout_shorter_than_interval(self) -> ProbeSchedule:
        if not self.timeout_may_outlast_interval and self.timeout >= self.interval:
            raise ValueError(
                f"timeout ({format_duration(self.timeout)}) must be shorter than "
                f"interval ({format_duration(self.interval)})"
            )
        return self


class ReachabilityConfig(ProbeSchedule):
    """Asks each datacenter, through its own execution profile, who answers."""
