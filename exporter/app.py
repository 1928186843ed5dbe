"""The HTTP face of the exporter: metrics, health, an index page. Every handler reads cache."""

from __future__ import annotations

import asyncio
import gzip
import html
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.health.http import HealthHandlers
from exporter.service import Exporter

EXPORTER = web.AppKey("exporter", Exporter)
RENDERER = web.AppKey("renderer", ThreadPoolExecutor)

async def index(request: web.Request) -> web.Response:
    exporter = request.app[EXPORTER]
    links = "".join(
        f'<li><a href="{path}">{path}</a> {html.escape(what)}</li>'
        for path, what in (
            ("/metrics", "Prometheus metrics"),
            ("/health", "health verdict"),
            ("/health/live", "liveness"),
            ("/health/ready", "readiness"),
        )
    )
    dcs = html.escape(", ".join(exporter.config.datacenters.all))
    page = (
        "<!doctype html><html><head><title>CQRS Cassandra exporter</title></head><body>"
        f"<h1>CQRS Cassandra exporter {__version__}</h1>"
        f"<p>Datacenters: {dcs}</p><ul>{links}</ul></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


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
    # One thread formats /metrics; it starts on the first scrape.
    app[RENDERER] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-render")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await exporter.start()
        yield
        await exporter.stop()
        app[RENDERER].shutdown(wait=False, cancel_futures=True)

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics)
    HealthHandlers(
        exporter.config.health, exporter.verdicts, exporter.liveness, exporter.ready
    ).add_routes(app)
    return app
