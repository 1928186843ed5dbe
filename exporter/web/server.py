"""The listeners: the main one (TLS and basic auth when a web config says so) and the
optional plain health listener, each with the HTTP limits."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from pathlib import Path

from aiohttp import web

from exporter.config.server import ServerConfig, parse_listen
from exporter.web.auth import BasicAuth, protect
from exporter.web.limits import GuardedSite, install_accept_error_handler, raise_fd_limit
from exporter.web.state import WebState

log = logging.getLogger("exporter")

HEALTH_MAX_CONNECTIONS = 64
"""The health listener serves kubelet: a handful of connections at a time."""


def health_app(app: web.Application) -> web.Application:
    """An app with only /health/live and /health/ready, answered by `app`'s handlers."""
    health = web.Application()
    for route in app.router.routes():
        resource = route.resource
        if route.method == "GET" and resource is not None and resource.canonical in (
            "/health/live",
            "/health/ready",
        ):
            health.router.add_get(resource.canonical, route.handler)
    return health


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ListenError(Exception):
    """A listener that cannot bind: the address (and the key that set it) and the cause."""

    def __init__(self, host: str, port: int, exc: OSError, key: str | None = None) -> None:
        cause = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        where = f" ({key})" if key else ""
        super().__init__(f"cannot listen on {host}:{port}{where}: {cause}")


async def _listen(site: GuardedSite, host: str, port: int, key: str | None = None) -> None:
    try:
        await site.start()
    except OSError as exc:
        raise ListenError(host, port, exc, key) from exc


class HttpServer:
    """Starts and stops the listeners of `app` as `server` and the web config describe."""

    def __init__(
        self, app: web.Application, server: ServerConfig, web_state: WebState | None
    ) -> None:
        self.app = app
        self.server = server
        self.web = web_state
        self._auth: BasicAuth | None = protect(app, web_state) if web_state is not None else None
        self._runners: list[web.AppRunner] = []
        self.sites: list[GuardedSite] = []
        self._watch: asyncio.Task[None] | None = None

    def _runner(self, app: web.Application) -> web.AppRunner:
        limits = self.server.http
        return web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self.server.shutdown_timeout,
            keepalive_timeout=limits.keepalive_timeout,
            max_line_size=limits.max_line_size,
            max_field_size=limits.max_field_size,
            max_headers=limits.max_headers,
        )

    async def start(self, host: str, port: int) -> None:
        """Listen; ListenError naming the address if a listener cannot."""
        raise_fd_limit()
        install_accept_error_handler(asyncio.get_running_loop())
        limits = self.server.http
        runner = self._runner(self.app)
        self._runners.append(runner)
        await runner.setup()
        context = self.web.context if self.web is not None else None
        main = GuardedSite(runner, host, port, limits, ssl_context=context)
        await _listen(main, host, port)
        self.sites.append(main)
        scheme = "https" if context is not None else "http"
        log.info("listening on %s://%s:%d", scheme, host, main.port)
        self._warn(host)
        if self.server.health_listen is not None:
            health_host, health_port = parse_listen(self.server.health_listen)
            health_runner = self._runner(health_app(self.app))
            self._runners.append(health_runner)
            await health_runner.setup()
            health = GuardedSite(
                health_runner,
                health_host,
                health_port,
                limits,
                max_connections=HEALTH_MAX_CONNECTIONS,
                reserved=0,
            )
            await _listen(health, health_host, health_port, "server.health_listen")
            self.sites.append(health)
            log.info(
                "health listener (/health/live, /health/ready) on http://%s:%d",
                health_host,
                health.port,
            )
        if self.web is not None:
            self._watch = asyncio.create_task(self.web.watch(), name="web-config-watch")

    def _warn(self, host: str) -> None:
        web_state = self.web
        if web_state is None:
            if not _loopback(host):
                log.info(
                    "serving without TLS or authentication on %s: to expose the exporter "
                    "beyond a trusted network, see server.web_config_file in docs/security.md",
                    host,
                )
            return
        if web_state.config.basic_auth_users and not web_state.tls and not _loopback(host):
            log.warning(
                "basic auth without TLS: passwords cross the network in clear; set "
                "tls_server_config in %s",
                web_state.path,
            )

    @property
    def port(self) -> int:
        return self.sites[0].port

    @property
    def health_port(self) -> int | None:
        return self.sites[1].port if len(self.sites) > 1 else None

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for runner in reversed(self._runners):
            await runner.cleanup()
        if self._auth is not None:
            self._auth.close()


def load_web_state(path: str | None) -> WebState | None:
    """The web config at `path` (None: none). WebConfigError if it cannot be used."""
    return WebState(Path(path)) if path is not None else None
