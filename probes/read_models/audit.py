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
import bisect
import random
import time
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cassandra.query import PreparedStatement

from exporter.budget import OverBudget
from exporter.config import ReadModelConfig, SyncMethod
from exporter.config.read_models import WRITTEN_AT, AuditConfig
from exporter.connection import classify, describe
from exporter.results import ProbeOutcome
from exporter.stats import quantile
from probes.base import ProbeContext
from probes.read_models.base import ReadModelBase, SyncFailure
from probes.read_models.cql import DeclaredCqlError, as_dict, bind

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
MAX_PENDING = 10_000
MAX_ERRORS_PER_RUN = 3
"""After this many failed requests a run stops: the cluster is not answering."""
MAX_IN_FLIGHT = 32
"""Lookups in flight at once: the budget paces their starts, this bounds a slow cluster."""
MAX_REMEMBERED = 50_000
"""Rows already checked are remembered (by key and write time) so a run never counts one twice."""


class Remembered:
    """The last `capacity` rows judged, by a 64-bit fingerprint of (key, write time).

    Fingerprints are kept unboxed, in a sorted array (membership is a binary search) and in
    the order they came (the oldest is forgotten first): 16 bytes a row, where the key itself
    (a tuple of UUIDs, dates and an integer write time, in an ordered dict) cost about 280.
    Two rows sharing a fingerprint (about one chance in 10^10 among 50,000) would only mean
    the second is not judged.
    """

    def __init__(self, capacity: int = MAX_REMEMBERED) -> None:
        self.capacity = capacity
        self._sorted: array[int] = array("q")
        self._order: array[int] = array("q")
        self._oldest = 0
        """Once the order is full, where its oldest fingerprint is (it is a ring)."""

    def _find(self, fingerprint: int) -> tuple[int, bool]:
        at = bisect.bisect_left(self._sorted, fingerprint)
        return at, at < len(self._sorted) and self._sorted[at] == fingerprint

    def add(self, key: tuple[Any, ...]) -> None:
        fingerprint = hash(key)
        at, known = self._find(fingerprint)
        if known:
            return
        self._sorted.insert(at, fingerprint)
        if len(self._order) < self.capacity:
            self._order.append(fingerprint)
            return
        forgotten = self._order[self._oldest]
        self._order[self._oldest] = fingerprint
        self._oldest = (self._oldest + 1) % self.capacity
        del self._sorted[self._find(forgotten)[0]]

    def __contains__(self, key: object) -> bool:
        return self._find(hash(key))[1]

    def __len__(self) -> int:
        return len(self._sorted)


class Pacer:
    """Spaces requests at least 1/rate apart, across runs, so no second holds more than `rate`.

    `wait` until the next request may go, then mark it `sent` as it goes: the spacing counts
    from the actual send, so a send that is late does not let the next one bunch up on it.
    """

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

    def sent(self) -> None:
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
class _Run:
    """One run's limits and what it found."""

    start_by: float
    """Monotonic time after which no request starts."""
    answer_by: float
    """Monotonic time by which every request must be answered."""
    lags: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    recent: bool = False
    """Whether a sampled source row was written within the lag window."""
    stopped: bool = False
    """No more requests: the audit's own slots or the request budget's tokens ran past
    `start_by`, or too many failed."""
    completed: bool = False


@dataclass
class _Pending:
    source: dict[str, Any]
    due: float
    """Wall time at which the grace period of the row ends."""


class AuditProbe(ReadModelBase):
    method = SyncMethod.AUDIT

    def __init__(self, context: ProbeContext, read_model: ReadModelConfig) -> None:
        super().__init__(context, read_model)
        assert self.read_model.audit is not None
        self.settings: AuditConfig = self.read_model.audit
        self.fields = self.settings.fields
        self.source_datacenter = self.settings.source_datacenter or self.config.datacenters.write
        self.pacer = Pacer(self.settings.budget, self.clock.monotonic)
        self.rng = random.Random()
        self.pending: OrderedDict[tuple[Any, ...], _Pending] = OrderedDict()
        self.remembered = Remembered()
        self.sampled_any = False
        self.last_verdicts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)

    def expected_requests(self) -> dict[str, float]:
        settings, interval = self.settings, self.read_model.interval
        sources = (settings.recent_query is not None) + (settings.sample_query is not None)
        # A run sends in the first 60 % of its timeout at most at the audit's own budget.
        most = settings.budget * 0.6 * self.schedule.timeout
        lookups = min(float(settings.samples_per_run), max(0.0, most - sources))
        rates = {self.source_datacenter: sources / interval}
        rates[self.datacenter] = rates.get(self.datacenter, 0.0) + lookups / interval
        return rates

    # --- requests under the budget ---------------------------------------------------

    async def _slot(self, run: _Run) -> bool:
        """Wait for the next request slot under the budget; False once the run is over."""
        if run.stopped or self.pacer.next_slot > run.start_by:
            run.stopped = True
            return False
        await self.pacer.wait()
        return True

    async def _send(self, run: _Run, query: str | PreparedStatement,
                    params: dict[str, Any] | None, datacenter: str) -> list[Any]:
        """Send one request in its slot: nothing may await between `_slot` and this.

        The request budget may hold it (`exporter.budget`), but not past `start_by`: then
        `OverBudget`, and the run ends with what it has judged."""
        self.pacer.sent()
        self.queries += 1
        now = self.clock.monotonic()
        try:
            return await self.connection.execute(
                query, params, datacenter=datacenter, consistency=self.read_model.consistency,
                timeout=max(0.1, run.answer_by - now),
                admit_within=max(0.0, run.start_by - now),
            )
        except OverBudget:
            self.queries -= 1  # not sent after all
            run.stopped = True
            raise

    # --- sampling ----------------------------------------------------------------------

    def _sample_sizes(self) -> tuple[int, int]:
        total = self.settings.samples_per_run
        if self.settings.sample_query is None:
            return total, 0
        if self.settings.recent_query is None:
            return 0, total
        recent = round(total * self.settings.recent_share)
        return recent, total - recent

    async def _source_rows(self, run: _Run) -> list[dict[str, Any]]:
        recent_n, token_n = self._sample_sizes()
        rows: list[dict[str, Any]] = []
        if recent_n and self.settings.recent_query is not None:
            statement = await self.connection.prepare(self.settings.recent_query)
            since = datetime.now(UTC) - timedelta(seconds=self.settings.recent_window)
            values = bind(statement, {"since": since, "max_rows": recent_n,
                                      "start_token": self.rng.randint(MIN_TOKEN, MAX_TOKEN)},
                          "recent_query")
            if await self._slot(run):
                found = await self._send(run, statement, values, self.source_datacenter)
                rows.extend(as_dict(r) for r in found[:recent_n])
        if token_n and self.settings.sample_query is not None:
            statement = await self.connection.prepare(self.settings.sample_query)
            start = self.rng.randint(MIN_TOKEN, MAX_TOKEN)
            values = bind(statement, {"start_token": start, "max_rows": token_n}, "sample_query")
            if await self._slot(run):
                found = await self._send(run, statement, values, self.source_datacenter)
                rows.extend(as_dict(r) for r in found[:token_n])
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

    async def _check(self, run: _Run, lookup: PreparedStatement, key: tuple[Any, ...],
                     source: dict[str, Any], sending: asyncio.Future[None]) -> None:
        """Look one row up in the read model (its slot already taken) and judge it."""
        try:
            values = bind(lookup, source, "lookup_query")
            sending.set_result(None)
            rows = await self._send(run, lookup, values, self.datacenter)
        except (DeclaredCqlError, asyncio.CancelledError):
            raise
        except OverBudget:
            return  # not sent: the row is left for a later run
        except Exception as exc:  # this row's lookup failed: the row is not judged
            run.errors.append(exc)
            if len(run.errors) >= MAX_ERRORS_PER_RUN:
                run.stopped = True
            return
        target = as_dict(rows[0]) if rows else None
        if target is not None:
            missing = [c for c in (*self.fields, WRITTEN_AT) if c not in target]
            if missing:
                raise DeclaredCqlError(
                    f"lookup_query must return {', '.join(missing)} (compared fields and "
                    f"WRITETIME(...) AS {WRITTEN_AT})"
                )
        self._decide(key, source, target, run.lags)

    async def _check_each(self, run: _Run, lookup: PreparedStatement,
                          rows: Iterable[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
        """Check rows with their lookups started at the budget's pace, several in flight."""
        tasks: list[asyncio.Task[None]] = []
        try:
            for key, source in rows:
                in_flight = [t for t in tasks if not t.done()]
                if len(in_flight) >= MAX_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                if not await self._slot(run):
                    break
                # The lookup goes out from its own task (so several can be in flight); the
                # next slot is waited for only once this one has actually been sent.
                sending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                tasks.append(asyncio.create_task(
                    self._check(run, lookup, key, source, sending)))
                await asyncio.wait([sending, tasks[-1]], return_when=asyncio.FIRST_COMPLETED)
            results = await asyncio.gather(*tasks, return_exceptions=True)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        for result in results:
            if isinstance(result, DeclaredCqlError):
                raise result

    def _decide(self, key: tuple[Any, ...], source: dict[str, Any],
                target: dict[str, Any] | None, lags: list[float]) -> None:
        now = self.clock.time()
        judgement = judge(source, target, self.fields, now, self.settings.grace)
        self.last_verdicts[judgement.verdict] += 1
        written = source[WRITTEN_AT] / 1e6
        recent = now - written <= self.settings.lag_window
        if judgement.verdict is Verdict.PENDING:
            # Its age, confirmed by this very lookup, is how far the read model trails.
            if recent and judgement.lag is not None:
                lags.append(judgement.lag)
            if key not in self.pending:
                if len(self.pending) >= MAX_PENDING:
                    return  # too many undecided rows: this one goes unjudged
                self.pending[key] = _Pending(source, written + self.settings.grace)
            else:
                self.pending.move_to_end(key)  # rechecked: the others go first next time
            return
        self.pending.pop(key, None)
        self.remembered.add(key)
        failure = FAILURES.get(judgement.verdict)
        self.record_check(failure)
        if failure is not None:
            self.log.debug("%s: %s (fields %s)", self.read_model.name, failure.value,
                           ", ".join(judgement.differs) or "-")
        elif recent and judgement.lag is not None:
            lags.append(judgement.lag)

    def _rechecks(self) -> list[tuple[tuple[Any, ...], _Pending]]:
        """Pending rows to look up again: all whose grace has ended, then a few others."""
        now = self.clock.time()
        due = [(k, p) for k, p in self.pending.items() if p.due <= now]
        waiting = [(k, p) for k, p in self.pending.items() if p.due > now]
        return due + waiting[: max(1, self.settings.samples_per_run // 2)]

    # --- one run -----------------------------------------------------------------------

    async def run(self) -> ProbeOutcome:
        started = self.clock.monotonic()
        # Requests start in the first 60 % of the timeout and have until 90 % to answer:
        # the run ends on its own, before the runner's cut-off.
        timeout = self.schedule.timeout
        run = _Run(start_by=started + 0.6 * timeout, answer_by=started + 0.9 * timeout)
        self.last_verdicts = dict.fromkeys(Verdict, 0)
        lookup = await self.connection.prepare(self.settings.lookup_query)
        try:
            await self._check_rows(run, lookup)
            run.completed = True
        finally:
            # Also when the runner cuts the run short: what was judged still counts.
            self._conclude(run)
        if run.errors:
            first = run.errors[0]
            return ProbeOutcome.failed(classify(first),
                                       f"{len(run.errors)} requests failed: {describe(first)}")
        return ProbeOutcome.ok()

    async def _check_rows(self, run: _Run, lookup: PreparedStatement) -> None:
        # Undecided rows first: those past their grace period become checks, the others
        # tell whether the read model still trails.
        await self._check_each(run, lookup, ((k, p.source) for k, p in self._rechecks()))
        if run.stopped:
            return
        try:
            rows = await self._source_rows(run)
        except DeclaredCqlError:
            raise
        except OverBudget:
            return
        except Exception as exc:
            run.errors.append(exc)
            return
        if rows:
            self.sampled_any = True
        await self._check_each(run, lookup, self._new_rows(run, lookup, rows))

    def _new_rows(self, run: _Run, lookup: PreparedStatement, rows: list[dict[str, Any]]
                  ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        """The sampled rows not judged or pending already (noting what the sample shows)."""
        now = self.clock.time()
        # A null dated column leaves a row with nothing to date it by: it is skipped.
        dated = [r for r in rows if r.get(WRITTEN_AT) is not None]
        written = [r[WRITTEN_AT] / 1e6 for r in dated]
        self.set_clock_ahead(written, now)
        run.recent = any(now - w <= self.settings.lag_window for w in written)
        seen: set[tuple[Any, ...]] = set()
        for source in dated:
            key = self._key(lookup, source)
            if key not in self.remembered and key not in self.pending and key not in seen:
                seen.add(key)
                yield key, source

    def _conclude(self, run: _Run) -> None:
        """Set the run's lag from what it judged."""
        if run.lags:
            self.set_lag(quantile(run.lags, self.settings.lag_quantile))
        elif run.errors or not run.completed:
            pass  # a run cut short or failing says nothing more: the lag ages out
        elif self.sampled_any and not run.recent and not self.pending:
            self.set_lag(0.0)  # nothing written recently is waiting: idle is not lag
        elif self.lag is not None and (run.recent or self.pending):
            self.set_lag(self.lag)  # nothing new was judged: the last reading stands
