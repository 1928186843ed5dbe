"""`GET /freshness`: the read-your-writes guidance as JSON, from cached state only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web


class FreshnessHandler:
    """Serves whatever `report` returns; it reads the freshness windows, never Cassandra."""

    def __init__(self, report: Callable[[], dict[str, Any]]) -> None:
        self._report = report

    async def handle(self, request: web.Request) -> web.Response:
        return web.json_response(self._report(), headers={"Cache-Control": "no-store"})
