"""The HTTP face of the exporter: metrics, health, a status page. Every handler reads cache."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from exporter.health.http import HealthHandlers
from exporter.service import Exporter
from exporter.slo.http import FreshnessHandler
from exporter.status.page import StatusPage

EXPORTER = web.AppKey("exporter", Exporter)
RENDERER = web.AppKey("renderer", ThreadPoolExecutor)


class Collected:
    """Metric families already collected, in the shape the encoders read a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def _render(encoder: Callable[[Any], bytes], families: list[Metric], compress: bool) -> bytes:
    body = encoder(Collected(families))
    return gzip.compress(body, compresslevel=6) if compress else body


async def metrics(request: web.Request) -> web.Response:
    """Collect on the loop (cheap: cached values into fresh families), format off it.

    Formatting the text is most of a scrape's cost; done in the render thread it no longer
    holds the event loop, whose timing the latency probes depend on. The families are
    built anew by each collect, so the thread reads nothing the loop changes.
    """
    exporter = request.app[EXPORTER]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    families = list(exporter.registry.collect())
    compress = "gzip" in request.headers.get("Accept-Encoding", "")
    body = await asyncio.get_running_loop().run_in_executor(
        request.app[RENDERER], _render, encoder, families, compress
    )
    headers = {"Content-Type": content_type}
    if compress:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


def create_app(exporter: Exporter) -> web.Application:
    app = web.Application()
    app[EXPORTER] = exporter
    # One thread formats /metrics and the status page; it starts on the first request.
    app[RENDERER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
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
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/freshness", FreshnessHandler(exporter.slo.freshness_report).handle)
    HealthHandlers(
        exporter.config.health, exporter.verdicts, exporter.liveness, exporter.ready
    ).add_routes(app)
    return app
