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
- Until the new render's form is ready, a scrape is served the previous render's bytes if
  they are younger than `max_age`; otherwise it waits for the one in-flight formatting,
  which all waiting scrapes share. So values are at most `max_age` old, and a storm of
  scrapes costs one render per `period`, not one per scrape.
- At most `max_waiting` scrapes wait at once; beyond that a scrape is answered 503 with
  `Retry-After` at once. Only the newest two renders are held, so memory returns to its
  baseline when a storm ends: no scrape keeps a copy of its own.
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
        self._forms: dict[Form, asyncio.Task[bytes]] = {}

    @property
    def forms(self) -> list[tuple[Form, Encoder]]:
        return [(form, self._encoders[form[0]]) for form in self._forms]

    def ready(self, form: Form) -> bytes | None:
        task = self._forms.get(form)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    def make(self, form: Form, encoder: Encoder) -> asyncio.Task[bytes] | None:
        """The task formatting `form` (started on first demand); None when too many forms."""
        task = self._forms.get(form)
        if task is not None:
            return task
        if len(self._forms) >= MAX_FORMS:
            return None
        self._encoders.setdefault(form[0], encoder)
        task = asyncio.get_running_loop().create_task(self._format(form))
        task.add_done_callback(_log_failure)
        self._forms[form] = task
        return task

    async def _format(self, form: Form) -> bytes:
        content_type, compress = form
        loop = asyncio.get_running_loop()
        if compress:
            plain_task = self.make((content_type, False), self._encoders[content_type])
            assert plain_task is not None  # a gzip form is only made after its plain form
            plain = await plain_task
            return await loop.run_in_executor(self._renderer, _compress, plain)
        encoder = self._encoders[content_type]
        return await loop.run_in_executor(self._renderer, encoder, Collected(self.families))


def _compress(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def _log_failure(task: asyncio.Task[bytes]) -> None:
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
        self._previous: Render | None = None
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
                self._start(render, form, encoder)
        self._previous, self._latest = last, render
        return render

    async def body(self, encoder: Encoder, content_type: str, compress: bool) -> bytes | None:
        """The bytes of one form, or None when too many scrapes already wait."""
        now = self._clock()
        latest = self._latest
        if latest is None or now - latest.at >= self.period:
            latest = self._render(now)
        form = (content_type, compress)
        if (body := latest.ready(form)) is not None:
            return body
        previous = self._previous
        young = previous is not None and now - previous.at < self.max_age
        if young and previous is not None and (body := previous.ready(form)) is not None:
            # The newest ready bytes; the form is made for the next scrape.
            self._start(latest, form, encoder)
            return body
        if self.waiting >= self.max_waiting:
            self.refused += 1
            return None
        task = self._start(latest, form, encoder)
        if task is None:  # too many forms in this render: format this one on its own
            task = self._start(Render(latest.families, now, self._renderer), form, encoder)
            assert task is not None
        self.waiting += 1
        try:
            # Shielded: a scrape that goes away does not cancel what others wait for.
            return await asyncio.shield(task)
        finally:
            self.waiting -= 1

    @staticmethod
    def _start(render: Render, form: Form, encoder: Encoder) -> asyncio.Task[bytes] | None:
        if form[1]:
            render.make((form[0], False), encoder)
        return render.make(form, encoder)

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
