"""The health endpoints: /health, /health/<group>, /health/live, /health/ready.

Handlers only read the latest evaluation and render it (each body once per evaluation),
so they answer in well under a millisecond whatever Cassandra is doing. Bodies carry
statuses, numbers, timestamps, check names, datacenter and read model names: never host
names, user names, secrets or exception text.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from exporter.health import UNITS, ComponentHealth, HealthSnapshot, HealthView, Status
from exporter.results import Check

if TYPE_CHECKING:
    from exporter.service import Exporter

JSON_HEADERS = {"Cache-Control": "no-store"}
FLAT_CHECKS = frozenset({Check.WRITE_PATH, Check.COMMAND_LATENCY_P99})
"""Checks with a single component (the write datacenter), shown without a sub-level."""

_TRUE = frozenset({"", "true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=JSON_HEADERS,
    )


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


class HealthHandlers:
    """The aiohttp handlers of the health endpoints for one exporter."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.config = exporter.config.health

    def _verbose(self, request: web.Request) -> bool | None:
        raw = request.query.getall("verbose", None)
        if raw is None:
            return False
        value = raw[-1].strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        return None

    def _answer(self, request: web.Request, group: str | None) -> web.Response:
        verbose = self._verbose(request)
        if verbose is None:
            return _json({"error": "verbose must be true or false"}, 400)
        snapshot = self.exporter.verdicts()
        body = rendered(snapshot, group, verbose)
        view = snapshot.view(group)
        if body is None or view is None:
            return _json({"error": "no such health group"}, 404)
        if group is None:
            code = self.config.http_status.of(view.status.value)
        else:
            code = self.config.groups[group].http_code(view.status.value, self.config.http_status)
        return web.Response(
            body=body, status=code, content_type="application/json", headers=JSON_HEADERS
        )

    async def health(self, request: web.Request) -> web.Response:
        """The aggregate verdict over every check."""
        return self._answer(request, None)

    async def group(self, request: web.Request) -> web.Response:
        """One configured group's verdict, e.g. a regional query service's readiness gate."""
        return self._answer(request, request.match_info["group"])

    async def live(self, request: web.Request) -> web.Response:
        """The process, its probe scheduler and its health evaluation; never Cassandra."""
        checks = {
            "probe_scheduler": self.exporter.runner.alive(),
            "health_evaluation": self.exporter.health.alive(),
        }
        alive = all(checks.values())
        return _json({"status": "UP" if alive else "DOWN", "checks": checks}, 200 if alive else 503)

    async def ready(self, request: web.Request) -> web.Response:
        """Config loaded, a session established, the first probe round done; never thresholds.

        A breached threshold is exactly when the exporter must stay in service.
        """
        checks = self.exporter.ready()
        ok = all(checks.values())
        return _json(
            {"status": Status.UP.value if ok else Status.DOWN.value, "checks": checks},
            200 if ok else 503,
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self.health)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/health/ready", self.ready)
        # Registered after the fixed paths, which take precedence; group names cannot be
        # `live` or `ready` (the config rejects them).
        app.router.add_get("/health/{group}", self.group)
