"""The do-no-harm request budget: one token bucket per datacenter, shared by every probe.

Every request the probes send goes through `CassandraConnection.execute`, which takes a
token from its datacenter's bucket first. The bucket refills at the budget less its burst,
and holds at most the burst, so no second (or longer stretch) ever holds more requests than
`probes.budget.requests_per_second_per_datacenter`.

Two shares draw on it. The reserved probes (replication sentinels and heartbeats, the
latency streams, reachability) take a token whenever one is there; the read models take one
only while the bucket keeps a reserve above it for the others, and queue behind each other
otherwise. So the reserved probes keep their pace and the read models get what is left;
`exporter.stretch` spaces the read models' runs so that what they ask fits.

A request may say by when it must be admitted (a read model's run has a deadline): a token
that would come later is not waited for, and `OverBudget` tells the run to end with what it
has; `cqrs_budget_gave_up_total` counts those requests.

Who is asking is a context variable the runner sets around each probe's run and start
(tasks begun there inherit it): a request outside any probe (the schema check) is reserved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from exporter.config import BudgetConfig, Config
from exporter.config.replication import ReplicationMode

RESERVED = "reserved"
READ_MODELS = "read_models"
SHARES = (RESERVED, READ_MODELS)


class OverBudget(Exception):
    """No token for this request before the deadline it was given: it was not sent."""

    def __init__(self, datacenter: str) -> None:
        super().__init__(f"no request budget left in {datacenter} before the run's deadline")
        self.datacenter = datacenter


@dataclass(frozen=True, slots=True)
class Requester:
    """Whose request this is: a probe's name, and whether it draws on the read models' share."""

    name: str = ""
    read_model: bool = False


_REQUESTER: ContextVar[Requester] = ContextVar(
    "budget_requester", default=Requester()  # noqa: B039 - frozen, never mutated
)


@contextmanager
def requesting(name: str, *, read_model: bool) -> Iterator[None]:
    """Within the block (and in tasks begun in it), requests are this probe's."""
    token = _REQUESTER.set(Requester(name, read_model))
    try:
        yield
    finally:
        _REQUESTER.reset(token)


@dataclass
class Bucket:
    """One datacenter's tokens, and what was taken from them."""

    datacenter: str
    budget: float
    """Requests per second, all shares together."""
    capacity: float
    refill: float
    reserve: float
    """Tokens the read models leave in the bucket for the reserved share."""
    monotonic: Callable[[], float]
    tokens: float = 0.0
    updated: float = 0.0
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHARES, 0))
    wait_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SHARES, 0.0))
    gave_up: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHARES, 0))
    """Requests not sent: no token before their deadline."""
    waiting: int = 0
    """Read-model requests queued for a token."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.updated = self.monotonic()

    def _refilled(self) -> float:
        now = self.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill)
        self.updated = now
        return self.tokens

    def floor(self, read_model: bool) -> float:
        """The tokens there must be for a request of that share to take one."""
        return 1.0 + (self.reserve if read_model else 0.0)

    def try_take(self, read_model: bool) -> bool:
        if read_model and self.waiting:
            return False  # behind the queue
        if self._refilled() < self.floor(read_model):
            return False
        self.tokens -= 1.0
        self.requests[READ_MODELS if read_model else RESERVED] += 1
        return True

    async def take(self, read_model: bool, within: float | None = None) -> float:
        """Wait for a token and return how long that took; the read models queue one behind
        the other. With `within` (seconds), a token that would come later is not waited for:
        `OverBudget`."""
        share = READ_MODELS if read_model else RESERVED
        started = self.monotonic()
        by = None if within is None else started + within
        try:
            if read_model:
                self.waiting += 1
                try:
                    await _acquire_within(self.lock, within, self.datacenter)
                    try:
                        await self._wait_for(self.floor(True), by)
                    finally:
                        self.lock.release()
                finally:
                    self.waiting -= 1
            else:
                await self._wait_for(1.0, by)
            self.tokens -= 1.0
            self.requests[share] += 1
        except OverBudget:
            self.gave_up[share] += 1
            raise
        finally:
            waited = self.monotonic() - started
            self.wait_seconds[share] += waited
        return waited

    async def _wait_for(self, floor: float, by: float | None) -> None:
        while (missing := floor - self._refilled()) > 0:
            if by is not None and self.updated + missing / self.refill > by:
                raise OverBudget(self.datacenter)
            await asyncio.sleep(missing / self.refill)


class RequestBudget:
    """The buckets of every datacenter, and each probe's requests by datacenter."""

    def __init__(
        self,
        config: BudgetConfig,
        datacenters: tuple[str, ...],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._monotonic = monotonic
        self.buckets: dict[str, Bucket] = {}
        self.asked: dict[tuple[str, str], int] = {}
        """(probe name, datacenter) → requests asked, read models only."""
        self._turns: dict[tuple[str, str], asyncio.Lock] = {}
        """(probe name, datacenter) → the lock its requests take turns on to queue."""
        for dc in datacenters:
            self.bucket(dc)

    def bucket(self, datacenter: str) -> Bucket:
        bucket = self.buckets.get(datacenter)
        if bucket is None:
            budget = self.config.requests_per_second_per_datacenter
            capacity = max(1.0, budget * self.config.burst)
            refill = max(budget - capacity, budget / 2)
            reserve = (capacity - 1.0) / 2
            bucket = Bucket(datacenter, budget, capacity, refill, reserve, self._monotonic)
            self.buckets[datacenter] = bucket
        return bucket

    def try_take(self, datacenter: str) -> bool:
        """Take a token at once if the requester's share allows it (no await: the fast path)."""
        requester = _REQUESTER.get()
        if requester.read_model:
            key = (requester.name, datacenter)
            self.asked[key] = self.asked.get(key, 0) + 1
        return self.bucket(datacenter).try_take(requester.read_model)

    async def take(self, datacenter: str, within: float | None = None) -> float:
        """Wait for a token (after `try_take` found none) and return how long that took; with
        `within` (seconds), at most that long: a token that would come later raises
        `OverBudget` and is not taken.

        A read model queues one request at a time: the others of its own wait for their
        turn first, so a read model that sends many at once (an audit, 32 in flight) never
        has them all queued ahead of another's one or two (a checkpoint, which would time
        out behind them). The queue thus serves the waiting read models in turn.
        """
        requester = _REQUESTER.get()
        bucket = self.bucket(datacenter)
        if not requester.read_model:
            return await bucket.take(False, within)
        key = (requester.name, datacenter)
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = asyncio.Lock()
        started = self._monotonic()
        try:
            await _acquire_within(turn, within, datacenter)
        except OverBudget:
            bucket.gave_up[READ_MODELS] += 1
            raise
        try:
            waited = self._monotonic() - started
            bucket.wait_seconds[READ_MODELS] += waited
            return waited + await bucket.take(
                True, None if within is None else max(0.0, within - waited)
            )
        finally:
            turn.release()


async def _acquire_within(lock: asyncio.Lock, within: float | None, datacenter: str) -> None:
    """Acquire `lock`, waiting at most `within` seconds (None: as long as it takes), else
    `OverBudget`."""
    try:
        async with asyncio.timeout(within):
            await lock.acquire()
    except TimeoutError:
        raise OverBudget(datacenter) from None


def reserved_estimate(config: Config) -> dict[str, float]:
    """Requests a second the reserved probes are expected to send to each datacenter, from the
    config alone (what is measured replaces it as it comes in)."""
    datacenters = config.datacenters
    rates = dict.fromkeys(datacenters.all, 0.0)
    probes = config.probes
    if probes.reachability.enabled:
        for dc in rates:
            rates[dc] += 1.0 / probes.reachability.interval
    latency = probes.latency
    if latency.enabled:
        rates[datacenters.write] += latency.rate  # commands
        for dc in rates:
            rates[dc] += latency.rate  # the probe's own read
        for query in latency.queries:
            for dc in query.datacenters or datacenters.all:
                rates[dc] += query.rate or latency.rate
    replication = probes.replication
    if replication.enabled:
        per_run = 1.0 / replication.interval
        if replication.mode is ReplicationMode.WRITER:
            rates[datacenters.write] += per_run
            for dc in datacenters.read:
                rates[dc] += 2 * per_run  # a read when due, mostly one more poll
        elif datacenters.local is not None:
            rates[datacenters.local] += 2 * per_run
    return rates
