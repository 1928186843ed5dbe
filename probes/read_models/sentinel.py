"""Sentinel method: write through the real write path, poll the read model until it shows.

Each run writes one sentinel with the declared statements (for example an event appended
under a reserved aggregate), unless the previous one is still awaited. A background poller
reads the read model every `poll_interval` until the sentinel's values appear: the lag is
the time from the write's start to the first read that shows it, on the exporter's
monotonic clock alone, so clock skew plays no part. While a sentinel is awaited the lag
reads at least its age, so a stuck sync shows at once. A sentinel unseen after
`sentinel_timeout` counts as a failure: `missing` if the read found no row, `mismatch` if it
found a row whose values never matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from string import Template
from typing import Any

from exporter.config import ReadModelConfig, SyncMethod
from exporter.config.read_models import SentinelConfig
from exporter.connection import classify, describe
from exporter.results import FailureReason, ProbeOutcome
from probes.base import ProbeContext
from probes.read_models.base import ReadModelBase, SyncFailure
from probes.read_models.cql import as_dict, bind


@dataclass
class Sentinel:
    binds: dict[str, Any]
    written_at: float
    """Monotonic time at which the write began."""
    row_seen: bool = False


def sentinel_binds(
    writer_id: str, seq: int, now: datetime, params: dict[str, str]
) -> dict[str, Any]:
    """The built-in binds of one sentinel, and the declared params rendered from them."""
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    node = uuid.getnode()
    sentinel_id = uuid.uuid1(node=node)
    tag = f"{writer_id}-{seq}"
    binds: dict[str, Any] = {
        "sentinel_id": sentinel_id,
        "sentinel_time": now,
        "sentinel_date": now.date(),
        "sentinel_seq": seq,
        "sentinel_tag": tag,
        "writer_id": writer_id,
    }
    fields = {
        "sentinel_id": str(sentinel_id),
        "sentinel_time_ms": str(int(now.timestamp() * 1000)),
        "sentinel_date": now.date().isoformat(),
        "sentinel_seq": str(seq),
        "sentinel_tag": tag,
        "writer_id": writer_id,
    }
    for name, text in params.items():
        binds[name] = Template(text).substitute(fields)
    return binds


def matches(row: dict[str, Any], match: dict[str, str], binds: dict[str, Any]) -> bool:
    return all(row.get(column) == binds[name] for column, name in match.items())


class SentinelProbe(ReadModelBase):
    method = SyncMethod.SENTINEL

    def __init__(self, context: ProbeContext, read_model: ReadModelConfig) -> None:
        super().__init__(context, read_model)
        assert self.read_model.sentinel is not None
        self.settings: SentinelConfig = self.read_model.sentinel
        self.writer_id = self.config.monitoring.writer_id
        # Milliseconds since the epoch at start: sequences keep growing across restarts.
        self.seq = int(time.time() * 1000)
        self.outstanding: Sentinel | None = None
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self.last_poll_error: str | None = None
        self.last_poll_reason: FailureReason | None = None
        """Why the last poll failed (None: it did not): a run while it fails says so."""

    async def start(self) -> None:
        self._poller = asyncio.create_task(self._poll_forever(), name=f"{self.name}-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    def expected_requests(self) -> dict[str, float]:
        interval = self.read_model.interval
        rates = {self.config.datacenters.write: len(self.settings.statements) / interval}
        # A few polls per sentinel: the read model mostly shows it within a few hundred ms.
        polls = 1.0 + min(3.0, 0.3 / self.settings.poll_interval)
        rates[self.datacenter] = rates.get(self.datacenter, 0.0) + polls / interval
        return rates

    def current_lag(self) -> float | None:
        lag = super().current_lag()
        sentinel = self.outstanding
        if sentinel is None:
            return lag
        age = self.clock.monotonic() - sentinel.written_at
        return age if lag is None else max(lag, age)

    async def run(self) -> ProbeOutcome:
        if self.outstanding is not None:
            if self.last_poll_reason is not None:
                return ProbeOutcome.failed(
                    self.last_poll_reason, f"polling the sentinel fails: {self.last_poll_error}"
                )
            return ProbeOutcome.ok("the previous sentinel is still awaited")
        self.seq += 1
        binds = sentinel_binds(self.writer_id, self.seq, datetime.now(UTC), self.settings.params)
        started = self.clock.monotonic()
        for index, text in enumerate(self.settings.statements):
            statement = await self.connection.prepare(text)
            self.queries += 1
            await self.connection.execute(
                statement, bind(statement, binds, f"write[{index}]"),
                datacenter=self.config.datacenters.write, write=True,
                timeout=self.schedule.timeout,
            )
        self.outstanding = Sentinel(binds, started)
        self._wake.set()
        return ProbeOutcome.ok()

    async def poll_once(self) -> bool:
        """Look for the outstanding sentinel once; True when it is settled (seen or lost)."""
        sentinel = self.outstanding
        if sentinel is None:
            return True
        statement = await self.connection.prepare(self.settings.read)
        self.queries += 1
        rows = await self.connection.execute(
            statement, bind(statement, sentinel.binds, "read"), datacenter=self.datacenter,
            consistency=self.read_model.consistency,
            timeout=max(self.settings.poll_interval * 5, 1.0),
        )
        now = self.clock.monotonic()
        found = [as_dict(r) for r in rows]
        sentinel.row_seen |= bool(found)
        if any(matches(row, self.settings.match, sentinel.binds) for row in found):
            self.set_lag(now - sentinel.written_at)
            self.record_check(None)
            self.outstanding = None
            return True
        if now - sentinel.written_at >= self.settings.sentinel_timeout:
            failure = SyncFailure.MISMATCH if sentinel.row_seen else SyncFailure.MISSING
            self.record_check(failure)
            self.log.warning("%s: sentinel %s not seen within %g s (%s)", self.read_model.name,
                             sentinel.binds["sentinel_tag"], self.settings.sentinel_timeout,
                             failure.value)
            self.outstanding = None
            return True
        return False

    async def _poll_forever(self) -> None:
        while True:
            if self.outstanding is None:
                self._wake.clear()
                await self._wake.wait()
            try:
                settled = await self.poll_once()
                self.last_poll_error = self.last_poll_reason = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                settled = False
                text = describe(exc)
                if text != self.last_poll_error:
                    self.log.warning("%s: polling the sentinel failed: %s",
                                     self.read_model.name, text)
                self.last_poll_error, self.last_poll_reason = text, classify(exc)
                # Unread is not unsynced: past its timeout the sentinel is given up uncounted.
                sentinel = self.outstanding
                if sentinel is not None and (self.clock.monotonic() - sentinel.written_at
                                             >= self.settings.sentinel_timeout):
                    self.outstanding = None
            if not settled:
                await asyncio.sleep(self.settings.poll_interval)
