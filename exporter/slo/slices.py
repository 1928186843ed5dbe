"""Time-slice SLIs: for each SLO and component, the health evaluations it was good in.

Each health evaluation is one slice. A slice is good when the component's latest reading
is within its threshold (UP), bad when it breaches it (DEGRADED or DOWN), and not counted
when there is no verdict (no data yet, or too few samples). The SLI is the ratio of the two
counters, `cqrs_slo_good_slices_total / cqrs_slo_slices_total`, per `slo` and `component`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.metrics_core import Metric

from exporter import metric_catalogue as catalogue
from exporter.config.slo import TIME_SLICE_SLOS
from exporter.health.snapshot import HealthSnapshot
from exporter.health.verdicts import BREACHES, Status

Key = tuple[str, str]
"""(slo, component)."""


class SliceCounters:
    """Good and total slices per (slo, component); counters only grow."""

    def __init__(self, components: Mapping[str, Iterable[str]] | None = None) -> None:
        self.good: dict[Key, int] = {}
        self.total: dict[Key, int] = {}
        # Known components start at zero, so their series exist before the first slice.
        for slo, names in (components or {}).items():
            if slo in TIME_SLICE_SLOS:
                for name in names:
                    self.good.setdefault((slo, name), 0)
                    self.total.setdefault((slo, name), 0)

    def record(self, snapshot: HealthSnapshot) -> None:
        """Count one slice from one evaluation's snapshot."""
        for check, items in snapshot.overall.components.items():
            if check.value not in TIME_SLICE_SLOS:
                continue
            for item in items:
                if item.reading is Status.UP:
                    good = 1
                elif item.reading in BREACHES:
                    good = 0
                else:
                    continue
                key = (check.value, item.component)
                self.good[key] = self.good.get(key, 0) + good
                self.total[key] = self.total.get(key, 0) + 1

    def ratio(self, slo: str, component: str) -> float | None:
        """The SLI since start (for tests and logs): good / total, None before a slice."""
        total = self.total.get((slo, component), 0)
        return self.good[(slo, component)] / total if total else None

    def families(self) -> Iterable[Metric]:
        good = catalogue.SLO_GOOD_SLICES.family(
            "Health evaluations (time slices) in which the SLO's check held for the component: "
            "the numerator of a time-slice SLI."
        )
        total = catalogue.SLO_SLICES.family(
            "Health evaluations (time slices) that judged the SLO's check for the component "
            "(slices without a verdict are not counted): the SLI's denominator."
        )
        for key in sorted(self.total):
            good.add_metric(list(key), self.good[key])
            total.add_metric(list(key), self.total[key])
        return (good, total)
