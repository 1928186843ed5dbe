"""The HTTP face of the exporter: metrics, health, a status page. Every handler reads cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from exporter.event_loop import short_gil_waits
from exporter.exposition import Collected, Exposition
from exporter.health.http import HealthHandlers
from exporter.service import Exporter
from exporter.slo.http import FreshnessHandler
from exporter.status.page import StatusPage

__all__ = ["EXPORTER", "EXPOSITION", "RENDERER", "Collected", "create_app"]

EXPORTER = web.AppKey("exporter", Exporter)
RENDERER = web.AppKey("renderer", ThreadPoolExecutor)
EXPOSITION = web.AppKey("exposition", Exposition)


def create_app(exporter: Exporter) -> web.Application:
    app = web.Application()
    app[EXPORTER] = exporter
    # One thread formats /metrics and the status page; it starts on the first request.
    app[RENDERER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
    # /metrics is served from a cached render (exporter.exposition).
    app[EXPOSITION] = Exposition(exporter.registry, app[RENDERER])

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        with short_gil_waits():
            await exporter.start()
            yield
            await exporter.stop()
        app[RENDERER].shutdown(wait=False, cancel_futures=True)

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get(
        "/",
        StatusPage(
            exporter.config,
            exporter.verdicts,
            exporter.health.history,
            exporter.runner.states,
            exporter.liveness,
            exporter.ready,
            exporter.clock,
            app[RENDERER],
        ).handle,
    )
    app.router.add_get("/metrics", app[EXPOSITION].handle)
    app.router.add_get("/freshness", FreshnessHandler(exporter.slo.freshness_report).handle)
    HealthHandlers(
        exporter.config.health, exporter.verdicts, exporter.liveness, exporter.ready
    ).add_routes(app)
    return app
