"""The HTTP face of the exporter: metrics, health, an index page. Every handler reads cache."""

from __future__ import annotations

import gzip
import html
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from exporter import __version__
from exporter.health_http import HealthHandlers
from exporter.service import Exporter

EXPORTER = web.AppKey("exporter", Exporter)

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


async def metrics(request: web.Request) -> web.Response:
    exporter = request.app[EXPORTER]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(exporter.registry)
    headers = {"Content-Type": content_type}
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


def create_app(exporter: Exporter) -> web.Application:
    app = web.Application()
    app[EXPORTER] = exporter

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await exporter.start()
        yield
        await exporter.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics)
    HealthHandlers(exporter).add_routes(app)
    return app
