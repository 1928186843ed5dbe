"""The read-model probes' bookkeeping over a scripted connection: pending rows, rechecks,
deduplication, the lag of a run, the metric families and the health observations.

The connection here is a stand-in that answers the declared queries from in-memory tables,
so the logic between the queries can be tested exactly; the same probes run against the
real cluster in test_read_model_cluster.py.
"""

from __future__ import annotations

import asyncio
from collections import namedtuple
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.budget import OverBudget
from exporter.clock import FakeClock
from exporter.config import parse_config
from exporter.config.read_models import bind_names
from exporter.health import Status, judge
from exporter.results import Check
from probes.base import ProbeContext
from probes.read_models import read_model_probe
from probes.read_models.audit import AuditProbe
from probes.read_models.base import ReadModelBase, SyncFailure
from probes.read_models.checkpoint import CheckpointProbe
from probes.registry import KINDS, family_collectors

NOW = 1_700_000_000.0

SOURCE = ("SELECT id, total, WRITETIME(total) AS written_at FROM app.source "
          "WHERE token(id) >= :start_token LIMIT :max_rows")
LOOKUP = "SELECT total, WRITETIME(total) AS written_at FROM app.target WHERE id = :id"


@dataclass
class Statement:
    query: str
    column_metadata: list[Any]


Column = namedtuple("Column", "name")


class ScriptedConnection:
    """Answers `SOURCE` from `source` and `LOOKUP` from `target`; counts requests."""

    def __init__(self) -> None:
        self.source: dict[str, tuple[int, float]] = {}
        self.target: dict[str, tuple[int, float]] = {}
        self.requests = 0
        self.fail_lookups = False
        self.head: Any = None
        self.checkpoint: Any = None

    async def prepare(self, query: str) -> Statement:
        return Statement(query, [Column(n) for n in sorted(bind_names(query),
                                                           key=query.index)])

    async def execute(self, query: Any, params: Any = None, **_: Any) -> list[Any]:
        self.requests += 1
        text = query.query if isinstance(query, Statement) else query
        if text.startswith("SELECT id"):
            row = namedtuple("Row", "id total written_at")
            return [row(k, total, int(at * 1e6)) for k, (total, at) in self.source.items()]
        if text.startswith("SELECT total"):
            if self.fail_lookups:
                raise TimeoutError("lookup timed out")
            found = self.target.get(params["id"])
            row = namedtuple("Row", "total written_at")
            return [] if found is None else [row(found[0], int(found[1] * 1e6))]
        if "head" in text:
            return [] if self.head is None else [(self.head,)]
        return [] if self.checkpoint is None else [(self.checkpoint,)]


def audit_model(**audit: Any) -> dict[str, Any]:
    return {
        "name": "target",
        "method": "audit",
        "interval": "10s",
        "timeout": "8s",
        "audit": {"sample_query": SOURCE, "lookup_query": LOOKUP, "compare": ["total"],
                  "budget": 1000, "grace": "30s", "samples_per_run": 100, **audit},
    }


def checkpoint_model() -> dict[str, Any]:
    return {"name": "projection", "method": "checkpoint",
            "checkpoint": {"head_query": "SELECT head FROM app.head",
                           "checkpoint_query": "SELECT position FROM app.checkpoint"}}


def build(*models: dict[str, Any]) -> tuple[list[ReadModelBase], ScriptedConnection, FakeClock]:
    config = parse_config({
        "cluster": {"contact_points": ["127.0.0.1"]},
        "datacenters": {"write": "us-east", "read": ["eu-west"]},
        "read_models": list(models),
    })
    connection = ScriptedConnection()
    clock = FakeClock(wall=NOW)
    context = ProbeContext(config, connection, clock)  # type: ignore[arg-type]
    probes = KINDS["read_model"].build(context)
    return probes, connection, clock  # type: ignore[return-value]


def audit_probe() -> tuple[AuditProbe, ScriptedConnection, FakeClock]:
    probes, connection, clock = build(audit_model())
    probe = probes[0]
    assert isinstance(probe, AuditProbe)
    probe.pacer._monotonic = clock.monotonic  # the pacer sleeps on the fake clock too

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    probe.pacer._sleep = advance
    return probe, connection, clock


def test_the_registry_builds_one_probe_per_enabled_read_model() -> None:
    assert KINDS["read_model"].factory is read_model_probe
    disabled = {**checkpoint_model(), "name": "off", "enabled": False}
    probes, _, _ = build(audit_model(), checkpoint_model(), disabled)
    assert [p.name for p in probes] == ["read_model:target", "read_model:projection"]
    assert isinstance(probes[0], AuditProbe) and isinstance(probes[1], CheckpointProbe)


async def test_young_absent_rows_wait_and_are_rechecked_when_their_grace_ends() -> None:
    probe, db, clock = audit_probe()
    db.source = {"a": (10, NOW - 100), "b": (11, NOW - 5)}  # b is young
    db.target = {"a": (10, NOW - 98)}
    outcome = await probe.run()
    assert outcome.success
    assert probe.checks == 1 and probe.failures[SyncFailure.MISSING] == 0
    assert set(k[0] for k in probe.pending) == {"b"}
    assert probe.lag == pytest.approx(5.0, abs=0.01)  # b has trailed 5 s so far, a took 2 s

    clock.advance(30.0)  # b's grace is over; it never arrived
    await probe.run()
    assert probe.checks == 2 and probe.failures[SyncFailure.MISSING] == 1
    assert not probe.pending


async def test_a_row_is_checked_once_however_often_it_is_sampled() -> None:
    probe, db, clock = audit_probe()
    db.source = {"a": (10, NOW - 100)}
    db.target = {"a": (10, NOW - 99)}
    for _ in range(3):
        await probe.run()
        clock.advance(10.0)
    assert probe.checks == 1
    # A new write to the same row is a new check.
    db.source["a"] = (12, NOW)
    db.target["a"] = (12, NOW + 0.5)
    await probe.run()
    assert probe.checks == 2 and probe.lag == pytest.approx(0.5)


async def test_an_idle_source_reads_zero_lag_and_an_empty_one_reads_nothing() -> None:
    probe, db, _ = audit_probe()
    await probe.run()
    assert probe.current_lag() is None  # no row at all yet: unknown, not 0
    db.source = {"a": (10, NOW - 3600)}  # written an hour ago, long synced
    db.target = {"a": (10, NOW - 3599)}
    await probe.run()
    assert probe.current_lag() == 0.0


async def test_failed_lookups_count_nothing_and_the_lag_ages_out() -> None:
    probe, db, clock = audit_probe()
    db.source = {"a": (10, NOW - 10)}
    db.target = {"a": (10, NOW - 8)}
    await probe.run()
    assert probe.current_lag() == pytest.approx(2.0)
    db.source["b"] = (3, NOW - 1)
    db.fail_lookups = True
    for _ in range(4):
        clock.advance(10.0)
        outcome = await probe.run()
        assert not outcome.success
    assert probe.checks == 1 and sum(probe.failures.values()) == 0
    assert probe.current_lag() is None  # three intervals without a reading


async def test_a_run_cut_short_keeps_what_it_judged() -> None:
    probe, db, _ = audit_probe()
    db.source = {f"r{i}": (i, NOW - 100) for i in range(50)}
    db.target = {f"r{i}": (i, NOW - 99) for i in range(50)}
    original = db.execute
    calls = 0

    async def slow_after_ten(query: Any, params: Any = None, **kwargs: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls > 11:
            await asyncio.sleep(10)
        return await original(query, params, **kwargs)

    db.execute = slow_after_ten  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(probe.run(), timeout=0.5)
    assert probe.checks == 10
    assert probe.lag == pytest.approx(1.0)


async def test_the_budget_caps_a_run_and_the_rest_waits_for_the_next() -> None:
    probe, db, clock = audit_probe()
    probe.pacer.gap = 1.0  # one request per second; requests start in 0.6 x 8 s
    db.source = {f"r{i}": (i, NOW - 100) for i in range(50)}
    db.target = dict(db.source)
    await probe.run()
    assert db.requests == 5 and probe.queries == 5  # at 0, 1, 2, 3 and 4 s
    assert probe.checks == 4
    clock.advance(10.0)
    await probe.run()  # the next run, an interval later, checks new rows only
    assert probe.checks == 8


async def test_checkpoint_probe_reads_positions_and_reports_unknown_before_any() -> None:
    probes, db, clock = build(checkpoint_model())
    probe = probes[0]
    await probe.run()
    assert probe.current_lag() is None
    db.head, db.checkpoint = int((NOW - 60) * 1e6), int((NOW - 60) * 1e6)  # WRITETIMEs
    clock.advance(1.0)
    await probe.run()
    assert probe.current_lag() == 0.0
    db.head = int((NOW + 0.5) * 1e6)  # a new event, written 1.5 s before the next run
    clock.advance(1.0)
    await probe.run()
    assert probe.current_lag() == pytest.approx(1.5)


def scrape(probes: list[ReadModelBase]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    for collector in family_collectors(probes):
        registry.register(collector)
    return generate_latest(registry).decode()


async def test_metrics_appear_once_per_family_with_reasons_precreated_at_zero() -> None:
    probes, _, _ = build(audit_model(), checkpoint_model(),
                              {**audit_model(), "name": "other"})
    text = scrape(probes)
    assert text.count("# TYPE cqrs_sync_failures_total counter") == 1
    assert text.count("# TYPE cqrs_read_model_sync_lag_seconds gauge") == 1
    for name in ("target", "other"):
        for reason in ("missing", "mismatch", "stale"):
            assert (f'cqrs_sync_failures_total{{read_model="{name}",reason="{reason}"}} 0.0'
                    in text)
        assert f'cqrs_sync_checks_total{{read_model="{name}"}} 0.0' in text
    # A checkpoint makes no checks: it has a lag series, no check series.
    assert 'cqrs_sync_checks_total{read_model="projection"}' not in text
    assert 'cqrs_read_model_info{method="checkpoint",read_model="projection"} 1.0' in text
    assert "cqrs_sync_failure_ratio{" not in text  # no checks yet, no ratio


async def test_failure_ratio_is_a_wilson_interval_and_the_verdict_uses_its_lower_bound() -> None:
    probes, _, _ = build(audit_model())
    probe = probes[0]
    config = probe.config
    for i in range(200):
        probe.record_check(SyncFailure.MISSING if i < 3 else None)
    reading = next(o for o in probe.observations() if o.check is Check.SYNC_FAILURE_RATE)
    assert reading.value == pytest.approx(0.015)
    assert reading.compared == pytest.approx(0.00511, abs=1e-4)
    assert reading.samples == 200 and reading.sufficient
    assert judge(reading, config) is Status.DEGRADED
    text = scrape(probes)
    assert 'cqrs_sync_failure_ratio{read_model="target"} 0.015' in text
    assert 'cqrs_sync_window_checks{read_model="target"} 200.0' in text


@pytest.mark.parametrize(
    ("failures", "checks", "expected"),
    [
        (1, 150, Status.UNKNOWN),  # one failure in few checks: not enough to judge
        (5, 60, Status.DEGRADED),  # five failures are enough, early
        (0, 2000, Status.UP),
        (1, 2000, Status.UP),  # 0.05 %: below the threshold
    ],
)
def test_few_checks_wait_for_enough_evidence(failures: int, checks: int,
                                             expected: Status) -> None:
    probes, _, _ = build(audit_model())
    probe = probes[0]
    for i in range(checks):
        probe.record_check(SyncFailure.MISMATCH if i < failures else None)
    reading = next(o for o in probe.observations() if o.check is Check.SYNC_FAILURE_RATE)
    assert judge(reading, probe.config) is expected


def test_lag_observation_is_unknown_before_any_reading() -> None:
    probes, _, _ = build(checkpoint_model())
    readings: list[Any] = list(probes[0].observations())
    assert [(o.check, o.component, o.value) for o in readings] == [
        (Check.READ_MODEL_SYNC_LAG, "projection", None)
    ]



async def test_a_source_clock_ahead_of_ours_is_shown_and_never_makes_negative_lag() -> None:
    probes, db, _ = build(checkpoint_model())
    probe = probes[0]
    db.head = int((NOW + 5.0) * 1e6)  # the writer's clock runs 5 s ahead
    db.checkpoint = int((NOW - 1.0) * 1e6)
    await probe.run()
    assert probe.clock_ahead == pytest.approx(5.0)
    assert probe.current_lag() == 0.0
    db.head = int((NOW - 0.5) * 1e6)  # fixed
    await probe.run()
    assert probe.clock_ahead == 0.0


async def test_a_run_the_request_budget_cannot_serve_ends_with_what_it_judged() -> None:
    """The exporter's budget (not the audit's own) has no token left before the run's
    start-by time: the request is not sent, the run ends successfully with what it judged, and
    the rows left over are sampled again by the next run."""
    probe, db, _ = audit_probe()
    db.source = {f"r{i}": (i, NOW - 100) for i in range(50)}
    db.target = {f"r{i}": (i, NOW - 99) for i in range(50)}
    original = db.execute
    given: list[float] = []

    async def budget_after_ten(query: Any, params: Any = None, **kwargs: Any) -> list[Any]:
        given.append(kwargs["admit_within"])
        if len(given) > 11:  # the source query and ten lookups got tokens
            raise OverBudget("eu-west")
        return await original(query, params, **kwargs)

    db.execute = budget_after_ten  # type: ignore[method-assign]
    outcome = await probe.run()
    assert outcome.success
    assert probe.checks == 10 and probe.queries == 11 and db.requests == 11
    assert probe.lag == pytest.approx(1.0)
    # Nothing may wait for a token past the first 60 % of the 8 s timeout.
    assert 0 < max(given) <= 0.6 * 8.0
    db.execute = original  # type: ignore[method-assign]
    await probe.run()
    assert probe.checks == 50
