"""The JSON bodies of the health endpoints, rendered from a snapshot.

Bodies carry statuses, numbers, timestamps, check names, datacenter and read model names:
never host names, user names, secrets or exception text. Each body is rendered once per
evaluation and kept on the snapshot.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from exporter.health.snapshot import ComponentHealth, HealthSnapshot, HealthView
from exporter.health.verdicts import UNITS
from exporter.results import Check

FLAT_CHECKS = frozenset({Check.WRITE_PATH, Check.COMMAND_LATENCY_P99})
"""Checks with a single component (the write datacenter), shown without a sub-level."""


def timestamp(seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2025-01-31T12:00:00.250Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float | None) -> float | None:
    # JSON has no infinity or NaN; a value that is not finite is shown as null.
    return value if value is not None and math.isfinite(value) else None


def _details(item: ComponentHealth, flat: bool) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if flat:
        details["component"] = item.component
    details["value"] = _number(item.value)
    if item.compared is not None:
        details["compared_value"] = _number(item.compared)
    details["threshold"] = item.threshold
    details["unit"] = UNITS[item.check]
    details["reading"] = item.reading.value
    if item.samples is not None:
        details["samples"] = item.samples
    if item.reason is not None:
        details["reason"] = item.reason.value
    return details


def _leaf(item: ComponentHealth, verbose: bool, flat: bool) -> dict[str, Any]:
    node: dict[str, Any] = {"status": item.status.value}
    if verbose:
        node["since"] = timestamp(item.since)
        node["details"] = _details(item, flat)
    return node


def render(view: HealthView, verbose: bool, evaluated_at: float | None) -> dict[str, Any]:
    """The Actuator-style body of one view: a status and one component per check."""
    components: dict[str, Any] = {}
    for check, aggregate in view.checks.items():
        items = view.components[check]
        if check in FLAT_CHECKS and len(items) == 1:
            components[check.value] = _leaf(items[0], verbose, flat=True)
            continue
        node: dict[str, Any] = {"status": aggregate.status.value}
        if verbose:
            node["since"] = timestamp(aggregate.since)
        node["components"] = {item.component: _leaf(item, verbose, False) for item in items}
        components[check.value] = node
    body: dict[str, Any] = {"status": view.status.value}
    if verbose:
        body["since"] = timestamp(view.since)
        body["evaluated_at"] = None if evaluated_at is None else timestamp(evaluated_at)
    body["components"] = components
    return body


def rendered(snapshot: HealthSnapshot, group: str | None, verbose: bool) -> bytes | None:
    """A view's body as bytes, rendered once per snapshot; None for an unknown group."""
    key = (group, verbose)
    body = snapshot.cache.get(key)
    if body is None:
        view = snapshot.view(group)
        if view is None:
            return None
        text = json.dumps(render(view, verbose, snapshot.evaluated_at), separators=(",", ":"))
        body = snapshot.cache[key] = text.encode()
    return body
