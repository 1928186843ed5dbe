"""/metrics from a cached render: a scrape picks bytes, whatever the scrape rate.

Collecting is cheap (every collector reads cached values into new families, on the event
loop); formatting the text and compressing it are most of a scrape's cost, so they happen
at most once per render and per form, in the render thread, and every scrape in between is
served the same bytes.

- A scrape that finds the newest render older than `period` collects anew (on the loop) and
  starts formatting, in the render thread, the forms the previous render was asked for, so
  they are ready for the next scrape. Each form (text 0.0.4 or OpenMetrics, as
  `prometheus_client.exposition.choose_encoder` negotiates it, plain or gzip) is made on
  first demand and once per render; a form nobody asks for is never made.
- Until the new render's form is ready, a scrape is served that form's newest ready bytes if
  they are younger than `max_age`; otherwise it waits for the one in-flight formatting,
  which all waiting scrapes share. So values are at most `max_age` old, and a storm of
  scrapes costs one render per `period`, not one per scrape. A gzip form is formatted and
  compressed in one job of the render thread.
- At most `max_waiting` scrapes wait at once; beyond that a scrape is answered 503 with
  `Retry-After` at once. Only the newest render and each form's newest bytes are held, so
  memory returns to its baseline when a storm ends: no scrape keeps a copy of its own.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any, Protocol

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

PERIOD = 0.25
"""Seconds a render is served before a scrape starts the next one."""
MAX_AGE = 1.0
"""A scrape is never served a render older than this: it waits for a newer one."""
MAX_WAITING = 64
"""Scrapes waiting for a render at once; more are refused with 503."""
RETRY_AFTER = 1
MAX_FORMS = 8
"""Forms (content type x compression) kept per render; clients can ask for many versions."""
GZIP_LEVEL = 6

Encoder = Callable[[Any], bytes]
Form = tuple[str, bool]
"""(content type, gzip)."""


class Families(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class Collected:
    """Metric families already collected, in the shape the encoders read a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


class Render:
    """One collection of the registry and the forms formatted from it (each made once)."""

    def __init__(self, families: list[Metric], at: float, renderer: Executor) -> None:
        self.families = families
        self.at = at
        self._renderer = renderer
        self._encoders: dict[str, Encoder] = {}
        self._forms: dict[Form, asyncio.Future[bytes]] = {}

    @property
    def forms(self) -> list[tuple[Form, Encoder]]:
        return [(form, self._encoders[form[0]]) for form in self._forms]

    def ready(self, form: Form) -> bytes | None:
        made = self._forms.get(form)
        if made is None or not made.done() or made.cancelled() or made.exception() is not None:
            return None
        return made.result()

    def make(
        self, form: Form, encoder: Encoder, done: Callable[[Render, Form, bytes], None]
    ) -> asyncio.Future[bytes] | None:
        """The formatting of `form` (started on first demand); None when too many forms.
        `done` hears of every form this render finishes."""
        made = self._forms.get(form)
        if made is not None:
            return made
        if len(self._forms) >= MAX_FORMS:
            return None
        self._encoders.setdefault(form[0], encoder)
        task = asyncio.get_running_loop().create_task(self._format(form, done))
        task.add_done_callback(_log_failure)
        self._forms[form] = task
        return task

    async def _format(self, form: Form, done: Callable[[Render, Form, bytes], None]) -> bytes:
        content_type, compress = form
        loop = asyncio.get_running_loop()
        encoder = self._encoders[content_type]
        plain = self.ready((content_type, False))
        if not compress:
            body = await loop.run_in_executor(self._renderer, encoder, Collected(self.families))
        elif plain is not None:
            body = await loop.run_in_executor(self._renderer, _compress, plain)
        else:
            # Formatted and compressed in one job: no hop through the loop in between.
            formatted, body = await loop.run_in_executor(
                self._renderer, _format_and_compress, encoder, Collected(self.families)
            )
            plain_form = (content_type, False)
            if plain_form not in self._forms and len(self._forms) < MAX_FORMS:
                made = loop.create_future()
                made.set_result(formatted)
                self._forms[plain_form] = made
                done(self, plain_form, formatted)
        done(self, form, body)
        return body


def _format_and_compress(encoder: Encoder, families: Collected) -> tuple[bytes, bytes]:
    plain = encoder(families)
    return plain, _compress(plain)


def _compress(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def _log_failure(task: asyncio.Future[bytes]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("rendering /metrics failed: %r", exc)


class Exposition:
    """The /metrics handler over `registry`, formatting in `renderer` (one thread)."""

    def __init__(
        self,
        registry: Families,
        renderer: Executor,
        *,
        period: float = PERIOD,
        max_age: float = MAX_AGE,
        max_waiting: int = MAX_WAITING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < period <= max_age:
            raise ValueError("period must be positive and at most max_age")
        self._registry = registry
        self._renderer = renderer
        self.period = period
        self.max_age = max_age
        self.max_waiting = max_waiting
        self._clock = clock
        self._latest: Render | None = None
        self._newest: dict[Form, tuple[float, bytes]] = {}
        """Each form's newest ready bytes and when they were collected."""
        self.waiting = 0
        self.renders = 0
        """Collections made (for tests and benchmarks)."""
        self.refused = 0
        """Scrapes answered 503 because too many were waiting."""

    def _render(self, now: float) -> Render:
        """Collect anew and start the forms the last render was asked for."""
        last = self._latest
        render = Render(list(self._registry.collect()), now, self._renderer)
        self.renders += 1
        if last is not None:
            for form, encoder in last.forms:
                render.make(form, encoder, self._made)
        self._latest = render
        return render

    def _made(self, render: Render, form: Form, body: bytes) -> None:
        newest = self._newest.get(form)
        if newest is not None and newest[0] >= render.at:
            return
        if newest is None and len(self._newest) >= MAX_FORMS:
            return  # a client asking for ever new versions gets no cache of its own
        self._newest[form] = (render.at, body)

    async def body(self, encoder: Encoder, content_type: str, compress: bool) -> bytes | None:
        """The bytes of one form, or None when too many scrapes already wait."""
        now = self._clock()
        latest = self._latest
        if latest is None or now - latest.at >= self.period:
            latest = self._render(now)
        form = (content_type, compress)
        if (body := latest.ready(form)) is not None:
            return body
        newest = self._newest.get(form)
        if newest is not None and now - newest[0] < self.max_age:
            # The newest ready bytes; the form is made for the next scrape.
            latest.make(form, encoder, self._made)
            return newest[1]
        if self.waiting >= self.max_waiting:
            self.refused += 1
            return None
        made = latest.make(form, encoder, self._made)
        if made is None:  # too many forms in this render: format this one on its own
            made = Render(latest.families, now, self._renderer).make(form, encoder, self._made)
            assert made is not None
        self.waiting += 1
        try:
            # Shielded: a scrape that goes away does not cancel what others wait for.
            return await asyncio.shield(made)
        finally:
            self.waiting -= 1

    async def handle(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        compress = "gzip" in request.headers.get("Accept-Encoding", "")
        body = await self.body(encoder, content_type, compress)
        if body is None:
            return web.Response(
                status=503,
                text="too many scrapes waiting for a render; retry shortly\n",
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if compress:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)
