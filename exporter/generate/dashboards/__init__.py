"""The Grafana dashboards, one module each, thresholds from the same Settings as the rules."""

from __future__ import annotations

from collections.abc import Callable

from exporter.generate.dashboards.exporter import exporter_health
from exporter.generate.dashboards.latency import latency
from exporter.generate.dashboards.overview import overview
from exporter.generate.dashboards.read_models import read_models
from exporter.generate.dashboards.replication import replication
from exporter.generate.dashboards.slo import slo_dashboard
from exporter.generate.panels import Dashboard
from exporter.generate.settings import Settings

__all__ = [
    "DASHBOARDS",
    "exporter_health",
    "latency",
    "overview",
    "read_models",
    "replication",
    "slo_dashboard",
]

DASHBOARDS: dict[str, Callable[[Settings], Dashboard]] = {
    "cqrs-overview": overview,
    "cqrs-replication": replication,
    "cqrs-read-models": read_models,
    "cqrs-latency": latency,
    "cqrs-exporter": exporter_health,
    "cqrs-slo": slo_dashboard,
}
"""File stem -> dashboard; the stem is also the dashboard's uid."""
