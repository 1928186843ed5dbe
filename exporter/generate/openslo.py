"""An OpenSLO (v1) document of the same SLOs, for teams whose SLO tool is not this one.

One `Service`, then one `SLO` per objective with its indicator inline: a ratio of two
Prometheus counters, summed over every component (the generated rules keep the components
apart; a tool that wants them per component groups the same queries by `component`).
"""

from __future__ import annotations

from typing import Any

import yaml

from exporter import metric_catalogue as catalogue
from exporter.config.slo import SLO_NAMES, TIME_SLICE_SLOS
from exporter.generate.settings import Settings

OPENSLO_FILE = "openslo.yaml"
SERVICE = "cqrs-query-side"
DESCRIPTIONS = {
    "replication_lag": "Replication lag to each read datacenter under {threshold} s",
    "read_model_sync_lag": "Each read model within {threshold} s of the write side",
    "query_latency_p99": "Query p99 under {threshold} s in each datacenter",
    "command_latency_p99": "Command p99 under {threshold} s in the write datacenter",
    "sync_failure_rate": "Sync checks that find the read model correct",
}


def _days(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 60)}m"


def _source(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}


def _ratio(slo: str) -> dict[str, Any]:
    if slo in TIME_SLICE_SLOS:
        selector = f'{{slo="{slo}"}}'
        return {
            "counter": True,
            "good": _source(f"sum({catalogue.SLO_GOOD_SLICES.total}{selector})"),
            "total": _source(f"sum({catalogue.SLO_SLICES.total}{selector})"),
        }
    return {
        "counter": True,
        "bad": _source(f"sum({catalogue.SYNC_FAILURES.total})"),
        "total": _source(f"sum({catalogue.SYNC_CHECKS.total})"),
    }


def openslo_documents(settings: Settings) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "openslo/v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "displayName": "CQRS query side on Cassandra"},
            "spec": {
                "description": "Freshness and speed of the regional read side, as measured "
                "by cqrs-cassandra-exporter."
            },
        }
    ]
    for slo in SLO_NAMES:
        name = slo.replace("_", "-")
        threshold = getattr(settings.thresholds, slo)
        description = DESCRIPTIONS[slo].format(threshold=f"{threshold:g}")
        unit = "health evaluations (time slices)" if slo in TIME_SLICE_SLOS else "sync checks"
        documents.append(
            {
                "apiVersion": "openslo/v1",
                "kind": "SLO",
                "metadata": {"name": name, "displayName": description},
                "spec": {
                    "description": f"{description}, counted in {unit}.",
                    "service": SERVICE,
                    "indicator": {
                        "metadata": {"name": f"{name}-good-ratio"},
                        "spec": {"ratioMetric": _ratio(slo)},
                    },
                    "timeWindow": [
                        {"duration": _days(settings.slo.period), "isRolling": True}
                    ],
                    "budgetingMethod": "Occurrences",
                    "objectives": [
                        {
                            "displayName": description,
                            "target": settings.slo.objective(slo, settings.thresholds),
                        }
                    ],
                },
            }
        )
    return documents


def render_openslo(settings: Settings, header: str) -> str:
    body = yaml.safe_dump_all(openslo_documents(settings), sort_keys=False, width=1_000)
    return header + body
