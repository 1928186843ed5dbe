"""Basic auth and extra headers from the web config, as aiohttp middleware and a signal.

bcrypt is slow on purpose (tens of milliseconds at cost 10), so a hash per request would
let any client spend the exporter's CPU. Verdicts are kept in a bounded cache keyed by an
HMAC, under a key made at start, of user, hash and password: the cache never holds a
password, and a changed hash misses it. Checks run in one thread, off the event loop;
when too many wait, a request gets 503 rather than queueing without bound.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from aiohttp import web

from exporter.web.state import WebState

log = logging.getLogger("exporter.web")

CACHE_SIZE = 4096
MAX_PENDING = 32
"""bcrypt checks waiting for the thread; beyond it a request gets 503 and Retry-After."""



@functools.cache
def _dummy_hash() -> bytes:
    """A hash of a password nobody has, checked for unknown users so that timing does not
    tell which user names exist."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(10))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text="401 Unauthorized\n",
        headers={"WWW-Authenticate": 'Basic realm="cqrs-exporter"', "Cache-Control": "no-store"},
    )


def parse_basic(header: str) -> tuple[bytes, bytes] | None:
    """User and password from an `Authorization: Basic ...` value, or None."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user, password


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # e.g. a password over bcrypt's 72 bytes
        return False


class BasicAuth:
    """Checks credentials against the users of the web config in force."""

    def __init__(self, state: WebState) -> None:
        self._state = state
        self._key = secrets.token_bytes(32)
        self._verdicts: OrderedDict[bytes, bool] = OrderedDict()
        self._pending = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _lookup(self, user: bytes) -> tuple[bytes, bool]:
        """The user's hash (the dummy one if unknown), comparing every name in full."""
        found = _dummy_hash()
        known = False
        for name, hashed in self._state.config.basic_auth_users.items():
            if hmac.compare_digest(name.encode(), user):
                found, known = hashed, True
        return found, known

    async def check(self, user: bytes, password: bytes) -> bool | None:
        """True or False; None when too many checks wait (the caller answers 503)."""
        hashed, known = self._lookup(user)
        key = hmac.new(
            self._key, b"\0".join((user, hashed, password)), hashlib.sha256
        ).digest()
        verdict = self._verdicts.get(key)
        if verdict is not None:
            self._verdicts.move_to_end(key)
            return verdict and known
        if self._pending >= MAX_PENDING:
            return None
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            verdict = await loop.run_in_executor(self._executor, _checkpw, password, hashed)
        finally:
            self._pending -= 1
        self._verdicts[key] = verdict
        if len(self._verdicts) > CACHE_SIZE:
            self._verdicts.popitem(last=False)
        return verdict and known

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._state.config.basic_auth_users:
            return await handler(request)
        credentials = parse_basic(request.headers.get("Authorization", ""))
        if credentials is None:
            return _unauthorized()
        verdict = await self.check(*credentials)
        if verdict is None:
            return web.Response(
                status=503, text="503 Service Unavailable\n", headers={"Retry-After": "1"}
            )
        if not verdict:
            return _unauthorized()
        return await handler(request)


def add_headers(state: WebState) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An on_response_prepare signal handler that adds the configured headers."""

    async def prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in state.config.http_server_config.headers.items():
            response.headers[name] = value

    return prepare


def protect(app: web.Application, state: WebState) -> BasicAuth:
    """Require basic auth (when users are configured) and add the headers on every route."""
    auth = BasicAuth(state)
    app.middlewares.append(auth.middleware)
    app.on_response_prepare.append(add_headers(state))
    return auth
