"""What the generated dashboards and rules are made from: the thresholds and a few knobs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter import DOCS_URL
from exporter.config import Config, LatencyConfig, ReplicationConfig, Thresholds
from exporter.config.health import Severities, Severity
from exporter.config.read_models import DEFAULT_MIN_CHECKS, EARLY_FAILURES
from exporter.config.slo import SloConfig
from exporter.results import Check

ALERT_SEVERITY = {Severity.DOWN: "critical", Severity.DEGRADED: "warning"}
"""What a breach makes of a health check, as an alert's `severity` label."""

DEFAULT_RUNBOOK_URL = f"{DOCS_URL}/runbooks.md"


@dataclass(frozen=True)
class Settings:
    """Everything the generators read; built from a Config, or from the defaults."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    min_samples: int = LatencyConfig().min_samples
    """Below this many samples in the latency window a p99 is not judged (as in /health)."""
    min_checks: int = DEFAULT_MIN_CHECKS
    """Below this many sync checks in the window (and fewer than `early_failures` failures) a
    failure ratio is not judged (as in /health); the smallest of the read models' own."""
    early_failures: int = EARLY_FAILURES
    sentinel_timeout: float = ReplicationConfig().sentinel_timeout
    loop_lag_flag: float = LatencyConfig().loop_lag_flag
    """Event-loop lag beyond which the latency probe flags its timings as inflated."""
    severities: Severities = field(default_factory=Severities)
    """The health checks' breach severities; each alert's `severity` label follows them."""
    runbook_url: str = DEFAULT_RUNBOOK_URL
    """Base URL of docs/runbooks.md; each alert links to `<runbook_url>#<alert name lowercased>`."""
    for_overrides: Mapping[str, str] = field(default_factory=dict)
    """Alert name -> `for:` duration, for test-only rule files; empty for the committed ones."""
    slo: SloConfig = field(default_factory=SloConfig)
    """The SLOs the burn-rate rules, the SLO dashboard and the OpenSLO document are made of."""
    slo_time_scale: float = 1.0
    """Divides every SLO window (for test-only rule files: 30 turns 1h into 2m); 1 committed."""

    @classmethod
    def from_config(cls, config: Config | None, runbook_url: str = DEFAULT_RUNBOOK_URL) -> Settings:
        if config is None:
            return cls(runbook_url=runbook_url)
        return cls(
            thresholds=config.thresholds,
            min_samples=config.probes.latency.min_samples,
            min_checks=min(
                (model.min_checks for model in config.read_models), default=DEFAULT_MIN_CHECKS
            ),
            sentinel_timeout=config.probes.replication.sentinel_timeout,
            loop_lag_flag=config.probes.latency.loop_lag_flag,
            severities=config.health.severities,
            runbook_url=runbook_url,
            slo=config.slo,
        )

    def severity(self, check: Check) -> str:
        return ALERT_SEVERITY[self.severities.of(check)]


def promql_number(value: float) -> str:
    """A threshold as PromQL writes it: `1`, `0.05`, `0.001` (shortest exact form)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def human_percent(ratio: float) -> str:
    """0.001 -> `0.1%`."""
    return f"{round(ratio * 100, 10):g}%"
