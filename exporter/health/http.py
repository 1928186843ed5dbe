"""The health endpoints: /health, /health/<group>, /health/live, /health/ready.

Handlers only read the latest evaluation and render it (each body once per evaluation),
so they answer in well under a millisecond whatever Cassandra is doing. What they read is
given as callables, so they know nothing of the exporter that owns the answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from exporter.config import HealthConfig
from exporter.health.bodies import rendered
from exporter.health.snapshot import HealthSnapshot
from exporter.health.verdicts import Status

JSON_HEADERS = {"Cache-Control": "no-store"}

_TRUE = frozenset({"", "true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

Checks = Callable[[], Mapping[str, bool]]
"""Named yes-or-no checks, read at request time from cached state."""


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=JSON_HEADERS,
    )


class HealthHandlers:
    """The aiohttp handlers of the health endpoints.

    `snapshot` gives the latest evaluation; `live` and `ready` give the checks behind
    /health/live and /health/ready, each UP only when all of its checks hold.
    """

    def __init__(
        self,
        config: HealthConfig,
        snapshot: Callable[[], HealthSnapshot],
        live: Checks,
        ready: Checks,
    ) -> None:
        self.config = config
        self._snapshot = snapshot
        self._live = live
        self._ready = ready

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
        snapshot = self._snapshot()
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
        checks = dict(self._live())
        alive = all(checks.values())
        return _json({"status": "UP" if alive else "DOWN", "checks": checks}, 200 if alive else 503)

    async def ready(self, request: web.Request) -> web.Response:
        """Config loaded, a session established, the first probe round done; never thresholds.

        A breached threshold is exactly when the exporter must stay in service.
        """
        checks = dict(self._ready())
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
