"""What one health evaluation leaves behind: immutable views that endpoints and metrics read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.health.verdicts import Reason, Status
from exporter.results import Check


@dataclass(frozen=True)
class ComponentHealth:
    """One check component after hysteresis, with the reading that was last judged."""

    check: Check
    component: str
    status: Status
    since: float
    reading: Status
    """The raw status of the latest reading (what hysteresis is acting on)."""
    value: float | None
    compared: float | None
    threshold: float | None
    samples: int | None
    reason: Reason | None


@dataclass(frozen=True)
class Aggregate:
    status: Status
    since: float


@dataclass(frozen=True)
class HealthView:
    """The components in one scope (everything, or one group) and their aggregates."""

    status: Status
    since: float
    checks: Mapping[Check, Aggregate]
    components: Mapping[Check, tuple[ComponentHealth, ...]]


@dataclass(frozen=True)
class HealthSnapshot:
    """Everything the endpoints and metrics show, from one evaluation."""

    evaluated_at: float | None
    """Wall-clock time of the evaluation; None before the first one."""
    overall: HealthView
    groups: Mapping[str, HealthView]
    cache: dict[tuple[str | None, bool], bytes] = field(default_factory=dict, compare=False)
    """Rendered bodies, filled on first use by the HTTP layer."""

    def view(self, group: str | None) -> HealthView | None:
        return self.overall if group is None else self.groups.get(group)
