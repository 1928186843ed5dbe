"""What one client can hold of the HTTP server: sockets, time, and log lines.

Every connection is wrapped in `GuardedProtocol` before aiohttp's handler sees it:

- a request head (request line and headers) must arrive whole within `header_timeout` of
  the connection's start, or of the first byte of the next request on a kept-alive one:
  a client that trickles its headers (slowloris) or sends nothing is closed;
- beyond `max_connections` open ones, a new connection is closed at once, before aiohttp
  makes anything for it, except a few let in on probation for `GET /health/...`, so that
  liveness keeps answering while the rest are taken;
- accept errors (EMFILE: "socket.accept() out of system resource") are logged at most once
  a minute, with a count; asyncio already pauses accepting for a second after each.

Line and header sizes and the idle keep-alive timeout are aiohttp's own, set by `serving`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from exporter.config.server import HttpLimits

log = logging.getLogger("exporter.web")

RESERVED = 64
"""Connections beyond max_connections let in on probation: each costs a socket and a small
object (no HTTP handler) until its first bytes show a request to /health/*, else it is
closed. A burst of hostile connections fills them only for the instant before their first
bytes arrive, so a probe in the same burst still finds one."""
RESERVED_TIMEOUT = 1.0
HEALTH_PREFIX = b"GET /health/"
END_OF_HEAD = b"\r\n\r\n"


class RateLimitedLog:
    """Logs a message at most once per `interval`, saying how many were held back."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last = -float("inf")
        self._held = 0

    def __call__(self, level: int, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._held += 1
            return
        if self._held:
            message += f" ({self._held} more like it in the last {self._interval:g}s)"
        self._last, self._held = now, 0
        self._logger.log(level, message, *args)


class ConnectionCount:
    """Open connections of one listener, against its cap."""

    def __init__(self, limit: int, reserved: int) -> None:
        self.limit = limit
        self.reserved = reserved
        self.open = 0
        self.refused = 0
        self.closed_slow = 0
        self.refusal_log = RateLimitedLog(log)


class GuardedProtocol(asyncio.Protocol):
    """Wraps aiohttp's RequestHandler: the header deadline and the connection cap."""

    def __init__(
        self,
        make_inner: Callable[[], asyncio.Protocol],
        count: ConnectionCount,
        header_timeout: float,
    ) -> None:
        self._make_inner = make_inner
        self._count = count
        self._timeout = header_timeout
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""
        self._reserved = False
        self._counted = False
        self._head = b""

    # --- connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        count = self._count
        if count.open >= count.limit + count.reserved:
            count.refused += 1
            count.refusal_log(
                logging.WARNING,
                "connection limit (server.http.max_connections: %d) reached: new connections "
                "are closed",
                count.limit,
            )
            transport.abort()
            return
        self._reserved = count.open >= count.limit
        count.open += 1
        self._counted = True
        if self._reserved:  # the handler is made once the first bytes ask for /health/
            self._arm(min(self._timeout, RESERVED_TIMEOUT))
            return
        self._arm(self._timeout)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted:
            self._count.open -= 1
            self._counted = False
        inner, self._inner = self._inner, None
        if inner is not None:
            inner.connection_lost(exc)

    # --- the header deadline ----------------------------------------------------------

    def _arm(self, timeout: float) -> None:
        self._disarm()
        self._deadline = asyncio.get_running_loop().call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        self._count.closed_slow += 1
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._reserved and self._inner is None:
            if self._transport is None or not self._counted:
                return
            self._head += data
            if not self._head.startswith(HEALTH_PREFIX[: len(self._head)]):
                self._expired()  # a reserved slot serves only the health endpoints
                return
            if len(self._head) < len(HEALTH_PREFIX):
                return
            data, self._head = self._head, b""
            self._inner = self._make_inner()
            self._inner.connection_made(self._transport)
        if self._inner is None:
            return
        if self._deadline is None:  # the first byte of a new request
            self._arm(self._timeout)
        window = self._tail + data
        end = window.rfind(END_OF_HEAD)
        if end >= 0 and end + len(END_OF_HEAD) == len(window):
            self._disarm()  # a whole head, nothing after it: wait for the response
        elif end >= 0:
            self._arm(self._timeout)  # a head, then the start of another (or a body)
        self._tail = window[-(len(END_OF_HEAD) - 1) :]
        self._inner.data_received(data)

    # --- the rest is the handler's ----------------------------------------------------

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through GuardedProtocol."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: HttpLimits,
        *,
        max_connections: int | None = None,
        reserved: int = RESERVED,
        ssl_context: Any = None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=1024)
        self.limits = limits
        self.count = ConnectionCount(max_connections or limits.max_connections, reserved)

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        timeout = self.limits.header_timeout

        def guarded() -> GuardedProtocol:
            return GuardedProtocol(server, self.count, timeout)

        self._server = await loop.create_server(
            guarded,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=timeout if self._ssl_context is not None else None,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


def install_accept_error_handler(loop: asyncio.AbstractEventLoop) -> None:
    """Log accept errors at most once a minute, without a traceback; the rest as before."""
    previous = loop.get_exception_handler()
    limited = RateLimitedLog(log)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            exc = context.get("exception")
            limited(
                logging.ERROR,
                "cannot accept connections: %s (out of file descriptors?); accepting again "
                "in a second",
                exc,
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def raise_fd_limit(wanted: int = 65_536) -> int:
    """Raise the soft limit on open files towards the hard one; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
