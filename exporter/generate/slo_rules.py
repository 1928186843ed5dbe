"""SLO rules: burn rates per window, error budget remaining, multi-window burn-rate alerts.

Every SLI is a ratio of two counters per `slo` and `component`: the exporter's time slices
(all and good, `SLO_SLICES` and `SLO_GOOD_SLICES` in the catalogue) for the four time-slice
SLOs, the read models' sync checks and failures for `sync_failure_rate`. The burn rate over a window
is the error ratio over it divided by the error budget (1 - objective): 1 spends the budget
exactly over the period. The alerts are the SRE workbook's (chapter 5, for 30 days): 1 h and
5 min at 14.4 and 6 h and 30 min at 6 page, 1 d and 2 h at 3 and 3 d and 6 h at 1 make a
ticket. Windows scale with the configured period (and `slo_time_scale`, for tests); the
recorded series keep the 30-day names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter import DOCS_URL
from exporter import metric_catalogue as catalogue
from exporter.config import format_duration
from exporter.config.slo import DEFAULT_PERIOD, SLO_NAMES, TIME_SLICE_SLOS
from exporter.generate.settings import Settings, human_percent, promql_number

RULES_FILE = "cqrs-slo.rules.yaml"
RUNBOOK = f"{DOCS_URL}/slo.md#when-a-burn-rate-alert-fires"
WINDOWS: dict[str, float] = {
    "5m": 300.0,
    "30m": 1800.0,
    "1h": 3600.0,
    "2h": 7200.0,
    "6h": 21600.0,
    "1d": 86400.0,
    "3d": 259200.0,
}
"""The burn-rate windows for a 30-day period, by the name their recorded series carry."""
PERIOD = "period"
LABELS = "slo, component"


def burn_rate(window: str) -> str:
    """The recorded burn rate over one window (or over the period: `period`)."""
    suffix = "_period" if window == PERIOD else window
    return f"slo_component:{catalogue.SLO_SLICES.name}:burn_rate{suffix}"


BUDGET_REMAINING = f"slo_component:{catalogue.SLO_SLICES.name}:error_budget_remaining"
"""1 - the burn rate over the period: 1 untouched, 0 spent, below 0 overspent."""


@dataclass(frozen=True)
class BurnAlert:
    name: str
    long: str
    short: str
    factor: float
    severity: str
    """`page` or `ticket`."""

    @property
    def budget_share(self) -> float:
        """The share of the period's budget this burn spends in the long window."""
        return self.factor * WINDOWS[self.long] / DEFAULT_PERIOD


BURN_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert("CqrsSloBurnRate1h", "1h", "5m", 14.4, "page"),
    BurnAlert("CqrsSloBurnRate6h", "6h", "30m", 6.0, "page"),
    BurnAlert("CqrsSloBurnRate1d", "1d", "2h", 3.0, "ticket"),
    BurnAlert("CqrsSloBurnRate3d", "3d", "6h", 1.0, "ticket"),
)


def window_seconds(settings: Settings, window: str) -> float:
    """A window's length under the configured period and the time scale, whole seconds."""
    nominal = settings.slo.period if window == PERIOD else WINDOWS[window] * (
        settings.slo.period / DEFAULT_PERIOD
    )
    return float(max(1, round(nominal / settings.slo_time_scale)))


def window_duration(settings: Settings, window: str) -> str:
    return format_duration(window_seconds(settings, window))


def error_ratio(slo: str, range_: str) -> str:
    """The SLI's error ratio over `range_`, per component."""
    if slo in TIME_SLICE_SLOS:
        selector = f'{{slo="{slo}"}}'
        total = f"sum by ({LABELS}) (rate({catalogue.SLO_SLICES.total}{selector}[{range_}]))"
        good = f"sum by ({LABELS}) (rate({catalogue.SLO_GOOD_SLICES.total}{selector}[{range_}]))"
        return f"(\n  {total}\n  - {good}\n)\n/ {total}"
    # Sync failures: events, not slices; the read model is the component.
    failures = f"sum by (read_model) (rate({catalogue.SYNC_FAILURES.total}[{range_}]))"
    checks = f"sum by (read_model) (rate({catalogue.SYNC_CHECKS.total}[{range_}]))"
    return (
        f"sum by ({LABELS}) (label_replace(label_replace(\n  {failures}\n  / {checks},\n"
        f'  "component", "$1", "read_model", "(.*)"), "slo", "{slo}", "", ""\n))'
    )


def budget(settings: Settings, slo: str) -> float:
    return round(1.0 - settings.slo.objective(slo, settings.thresholds), 12)


def _burn_rules(settings: Settings, windows: list[str]) -> list[dict[str, Any]]:
    rules = []
    for window in windows:
        range_ = window_duration(settings, window)
        for slo in SLO_NAMES:
            expr = f"(\n{error_ratio(slo, range_)}\n) / {promql_number(budget(settings, slo))}"
            # The label (also in the result) keeps the rules of one name apart for promtool.
            rules.append({"record": burn_rate(window), "expr": expr, "labels": {"slo": slo}})
    return rules


def alert(settings: Settings, burn: BurnAlert) -> dict[str, Any]:
    factor = promql_number(burn.factor)
    long_h, short_h = window_duration(settings, burn.long), window_duration(settings, burn.short)
    share = human_percent(burn.budget_share)
    return {
        "alert": burn.name,
        "expr": f"{burn_rate(burn.long)} > {factor}\nand {burn_rate(burn.short)} > {factor}",
        "labels": {
            "severity": burn.severity,
            "long_window": long_h,
            "short_window": short_h,
        },
        "annotations": {
            "summary": f"SLO {{{{ $labels.slo }}}} of {{{{ $labels.component }}}} burns its "
            f"error budget over {factor}x as fast as its period allows",
            "description": f"Over the last {long_h} and the last {short_h} the "
            f"{{{{ $labels.slo }}}} SLI of {{{{ $labels.component }}}} had more than {factor} "
            f"times the errors its objective allows: {share} of the period's budget in "
            f"{long_h}.",
            "runbook_url": RUNBOOK,
        },
    }


def slo_rule_groups(settings: Settings) -> dict[str, Any]:
    """The SLO rule file: burn rates, the budget, then the alerts."""
    scale = settings.slo_time_scale
    budget_interval = format_duration(max(1.0, round(300 / scale)))
    return {
        "groups": [
            {
                "name": "cqrs-slo.burn-rates",
                "rules": _burn_rules(settings, list(WINDOWS)),
            },
            {
                # A rate over the whole period is costly: evaluated every 5 minutes.
                "name": "cqrs-slo.error-budget",
                "interval": budget_interval,
                "rules": [
                    *_burn_rules(settings, [PERIOD]),
                    {"record": BUDGET_REMAINING, "expr": f"1 - {burn_rate(PERIOD)}"},
                ],
            },
            {
                "name": "cqrs-slo.alerts",
                "rules": [alert(settings, burn) for burn in BURN_ALERTS],
            },
        ]
    }
