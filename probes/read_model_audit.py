"""Audit method: sample write-side rows, find each in the read model, compare fields and times.

Nothing is specific to a domain: the declared queries pick the rows (recent ones, or rows
from a random token on), the lookup finds the read model's row by the source row's columns,
and `compare` names the fields that must match. Every query the audit sends waits its turn
under the configured budget (queries per second), across runs.

A present row whose fields match is in sync; its lag is the read model's WRITETIME minus the
source's. A row still absent (or older than the write) within the grace period is pending;
it is looked up again once the grace period has passed, and then counts as `missing`
(absent) or `stale` (older and different). A row written after the source write with a
different field is a `mismatch`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cassandra.query import PreparedStatement

from exporter.config import SyncMethod
from exporter.config.read_models import WRITTEN_AT, AuditConfig
from exporter.connection import classify, describe
from exporter.results import ProbeOutcome
from exporter.stats import quantile
from probes.read_model_base import ReadModelBase, SyncFailure
from probes.read_model_cql import DeclaredCqlError, as_dict, bind

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
MAX_PENDING = 10_000
MAX_ERRORS_PER_RUN = 3
"""After this many failed requests a run stops: the cluster is not answering."""
MAX_REMEMBERED = 50_000
"""Rows already checked are remembered (by key and write time) so a run never counts one twice."""


class Pacer:
    """Spaces requests at least 1/rate apart, across runs, so no second holds more than `rate`."""

    def __init__(
        self,
        rate: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.gap = 1.0 / rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = float("-inf")

    @property
    def next_slot(self) -> float:
        return max(self._next, self._monotonic())

    async def wait(self) -> None:
        while (delay := self._next - self._monotonic()) > 0:
            await self._sleep(delay)
        self._next = max(self._next, self._monotonic()) + self.gap


class Verdict(StrEnum):
    SYNCED = "synced"
    PENDING = "pending"
    MISSING = "missing"
    MISMATCH = "mismatch"
    STALE = "stale"


FAILURES = {
    Verdict.MISSING: SyncFailure.MISSING,
    Verdict.MISMATCH: SyncFailure.MISMATCH,
    Verdict.STALE: SyncFailure.STALE,
}


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    lag: float | None = None
    """For a synced row, its sync lag; for a pending one, its age so far."""
    differs: tuple[str, ...] = ()


def judge(
    source: dict[str, Any],
    target: dict[str, Any] | None,
    fields: dict[str, str],
    now: float,
    grace: float,
) -> Judgement:
    """Decide one sampled row. Write times are WRITETIME microseconds under `written_at`."""
    written = source[WRITTEN_AT] / 1e6
    age = now - written
    if target is None:
        if age < grace:
            return Judgement(Verdict.PENDING, max(0.0, age))
        return Judgement(Verdict.MISSING)
    differs = tuple(col for col, src in fields.items() if target.get(col) != source.get(src))
    synced_at = target.get(WRITTEN_AT)
    synced = None if synced_at is None else synced_at / 1e6
    if not differs:
        return Judgement(Verdict.SYNCED, 0.0 if synced is None else max(0.0, synced - written))
    if synced is None or synced < written:
        # The read model still holds an older version: the write may yet arrive.
        if age < grace:
            return Judgement(Verdict.PENDING, max(0.0, age), differs)
        return Judgement(Verdict.STALE, None, differs)
    return Judgement(Verdict.MISMATCH, None, differs)


@dataclass
class _Pending:
    source: dict[str, Any]
    due: float
    """Wall time at which the grace period of the row ends."""


class AuditProbe(ReadModelBase):
    method = SyncMethod.AUDIT

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        assert self.read_model.audit is not None
        self.settings: AuditConfig = self.read_model.audit
        self.fields = self.settings.fields
        self.source_datacenter = self.settings.source_datacenter or self.config.datacenters.write
        self.pacer = Pacer(self.settings.budget, self.clock.monotonic)
        self.rng = random.Random()
        self.pending: OrderedDict[tuple[Any, ...], _Pending] = OrderedDict()
        self.remembered: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self.sampled_any = False
        self.last_verdicts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)

    # --- requests under the budget ---------------------------------------------------

    async def _query(self, query: str | PreparedStatement, params: dict[str, Any] | None,
                     datacenter: str, deadline: float) -> list[Any] | None:
        """One paced request; None when its turn would come after the run's deadline."""
        if self.pacer.next_slot > deadline:
            return None
        await self.pacer.wait()
        self.queries += 1
        return await self.connection.execute(
            query, params, datacenter=datacenter, consistency=self.read_model.consistency,
            timeout=max(0.1, deadline - self.clock.monotonic()),
        )

    # --- sampling ----------------------------------------------------------------------

    def _sample_sizes(self) -> tuple[int, int]:
        total = self.settings.samples_per_run
        if self.settings.sample_query is None:
            return total, 0
        if self.settings.recent_query is None:
            return 0, total
        recent = round(total * self.settings.recent_share)
        return recent, total - recent

    async def _source_rows(self, deadline: float) -> list[dict[str, Any]]:
        recent_n, token_n = self._sample_sizes()
        rows: list[dict[str, Any]] = []
        if recent_n and self.settings.recent_query is not None:
            statement = await self.connection.prepare(self.settings.recent_query)
            since = datetime.now(UTC) - timedelta(seconds=self.settings.recent_window)
            values = bind(statement, {"since": since, "max_rows": recent_n}, "recent_query")
            found = await self._query(statement, values, self.source_datacenter, deadline)
            rows.extend(as_dict(r) for r in (found or [])[:recent_n])
        if token_n and self.settings.sample_query is not None:
            statement = await self.connection.prepare(self.settings.sample_query)
            start = self.rng.randint(MIN_TOKEN, MAX_TOKEN)
            values = bind(statement, {"start_token": start, "max_rows": token_n}, "sample_query")
            found = await self._query(statement, values, self.source_datacenter, deadline)
            rows.extend(as_dict(r) for r in (found or [])[:token_n])
        for row in rows:
            if WRITTEN_AT not in row:
                raise DeclaredCqlError(
                    f"the source queries must return the write time as {WRITTEN_AT}, e.g. "
                    f"WRITETIME(status) AS {WRITTEN_AT}"
                )
        return rows

    # --- lookups -----------------------------------------------------------------------

    def _key(self, lookup: PreparedStatement, source: dict[str, Any]) -> tuple[Any, ...]:
        values = bind(lookup, source, "lookup_query")
        return (*values.values(), source[WRITTEN_AT])

    async def _lookup(self, lookup: PreparedStatement, source: dict[str, Any],
                      deadline: float) -> dict[str, Any] | bool | None:
        """The read model's row (None if absent), or False if the budget ran out first."""
        values = bind(lookup, source, "lookup_query")
        rows = await self._query(lookup, values, self.datacenter, deadline)
        if rows is None:
            return False
        if not rows:
            return None
        target = as_dict(rows[0])
        missing = [c for c in (*self.fields, WRITTEN_AT) if c not in target]
        if missing:
            raise DeclaredCqlError(
                f"lookup_query must return {', '.join(missing)} (compared fields and "
                f"WRITETIME(...) AS {WRITTEN_AT})"
            )
        return target

    def _remember(self, key: tuple[Any, ...]) -> None:
        self.remembered[key] = None
        if len(self.remembered) > MAX_REMEMBERED:
            self.remembered.popitem(last=False)

    def _decide(self, key: tuple[Any, ...], source: dict[str, Any],
                target: dict[str, Any] | None, lags: list[float]) -> None:
        now = self.clock.time()
        judgement = judge(source, target, self.fields, now, self.settings.grace)
        self.last_verdicts[judgement.verdict] += 1
        written = source[WRITTEN_AT] / 1e6
        recent = now - written <= self.settings.lag_window
        if judgement.verdict is Verdict.PENDING:
            if key not in self.pending and len(self.pending) < MAX_PENDING:
                self.pending[key] = _Pending(source, written + self.settings.grace)
            return
        self.pending.pop(key, None)
        self._remember(key)
        failure = FAILURES.get(judgement.verdict)
        self.record_check(failure)
        if failure is not None:
            self.log.debug("%s: %s (fields %s)", self.read_model.name, failure.value,
                           ", ".join(judgement.differs) or "-")
        elif recent and judgement.lag is not None:
            lags.append(judgement.lag)

    # --- one run -----------------------------------------------------------------------

    async def run(self) -> ProbeOutcome:
        started = self.clock.monotonic()
        # Leave room under the runner's timeout for the last request to come back.
        deadline = started + self.schedule.timeout * 0.8
        self.last_verdicts = dict.fromkeys(Verdict, 0)
        lookup = await self.connection.prepare(self.settings.lookup_query)
        lags: list[float] = []
        errors: list[BaseException] = []

        async def check(key: tuple[Any, ...], source: dict[str, Any]) -> bool:
            try:
                target = await self._lookup(lookup, source, deadline)
            except (DeclaredCqlError, asyncio.CancelledError):
                raise
            except Exception as exc:  # one row's lookup failed: the row is not judged
                errors.append(exc)
                return len(errors) < MAX_ERRORS_PER_RUN
            if target is False:
                return False
            assert target is not True
            self._decide(key, source, target, lags)
            return True

        # Rows whose grace period has ended are decided first.
        now = self.clock.time()
        for key, pending in list(self.pending.items()):
            if pending.due > now:
                continue
            if not await check(key, pending.source):
                break

        recent_in_sample = False
        if self.pacer.next_slot <= deadline:
            try:
                rows = await self._source_rows(deadline)
            except DeclaredCqlError:
                raise
            except Exception as exc:
                errors.append(exc)
                rows = []
            if rows:
                self.sampled_any = True
            now = self.clock.time()
            for source in rows:
                written = source.get(WRITTEN_AT)
                if written is None:
                    continue  # the dated column is null in this row: nothing to date it by
                self.note_source_time(written / 1e6, now)
                recent_in_sample |= now - written / 1e6 <= self.settings.lag_window
                key = self._key(lookup, source)
                if key in self.remembered or key in self.pending:
                    continue
                if not await check(key, source):
                    break

        # Rows still pending are trailing by their age so far (a stuck consumer shows here).
        now = self.clock.time()
        for pending in self.pending.values():
            age = now - pending.source[WRITTEN_AT] / 1e6
            if age <= self.settings.lag_window:
                lags.append(max(0.0, age))
        if lags:
            self.set_lag(quantile(lags, self.settings.lag_quantile))
        elif self.sampled_any and not recent_in_sample:
            self.set_lag(0.0)  # nothing written recently is waiting: idle is not lag
        elif self.lag is not None and recent_in_sample:
            self.set_lag(self.lag)  # recent rows were all checked before: the lag stands
        if errors:
            return ProbeOutcome.failed(classify(errors[0]),
                                       f"{len(errors)} requests failed: {describe(errors[0])}")
        return ProbeOutcome.ok()
