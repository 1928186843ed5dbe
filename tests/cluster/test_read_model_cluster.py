"""Read-model sync against the real testbed, driven by the reference order workload.

Each test runs the workload in its own keyspace and a real exporter whose read models are
declared with CQL (the builders in testbed.workload.read_models), then reads what the
exporter reports: /metrics samples and the health checks' observations.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from exporter.health import Status, judge
from exporter.results import Check, Observation
from exporter.stats import quantile
from probes.read_models.base import ReadModelBase
from testbed import TestbedCluster
from testbed.workload import Knobs, SyncMode, Workload
from testbed.workload import read_models as declared
from testbed.workload.faults import Delay, FailureKind
from tests.support import RunningExporter, poll_until, serve_exporter

pytestmark = pytest.mark.cluster

_keyspaces = itertools.count(1)

QUIET_PROBES = {
    # Only the read-model probes run: the others would add load without adding evidence here.
    "probes": {
        "latency": {"enabled": False},
        "replication": {"enabled": False},
    },
}


def keyspace(tag: str) -> str:
    return f"rm_{tag}_{int(time.time()) % 100000}_{next(_keyspaces)}"


@asynccontextmanager
async def running_workload(cluster: TestbedCluster, tag: str, *, start: bool = True,
                           projector: bool = True, seed: int | None = None,
                           **knobs: Any) -> AsyncIterator[Workload]:
    workload = Workload(
        cluster.contact_points,
        cluster.write_datacenter,
        keyspace=keyspace(tag),
        knobs=Knobs(**knobs),
        replication=dict.fromkeys(cluster.datacenters, 1),
        seed=seed,
    )
    try:
        if start:
            await workload.start(projector=projector)
        else:
            await workload.create_schema()
        yield workload
    finally:
        await workload.stop(drain=5.0)


def exporter_config(make_config: Callable[..., dict[str, Any]],
                    *read_models: dict[str, Any]) -> dict[str, Any]:
    return make_config({**QUIET_PROBES, "read_models": list(read_models)})


def probe_of(running: RunningExporter, name: str) -> ReadModelBase:
    return next(p for p in running.exporter.probes
                if isinstance(p, ReadModelBase) and p.read_model.name == name)


def observation(probe: ReadModelBase, check: Check) -> Observation:
    return next(o for o in probe.observations() if o.check is check)


async def readings(running: RunningExporter, name: str, count: int,
                   per_run: float = 30.0) -> list[float]:
    """The lag reported after each of the probe's next `count` successful runs."""
    state = running.exporter.runner.states[f"read_model:{name}"]
    values: list[float] = []
    attempts = 0
    runs = state.runs
    while len(values) < count:
        attempts += 1
        assert attempts <= 3 * count, f"{name}: too many failed runs ({state.last_outcome})"
        await poll_until(lambda seen=runs: state.runs > seen, timeout=per_run,
                         message=f"a new run of {name}")
        runs = state.runs
        lag = running.sample("cqrs_read_model_sync_lag_seconds", {"read_model": name})
        if lag is not None and state.last_outcome is not None and state.last_outcome.success:
            values.append(lag)
    return values


def audit_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "samples_per_run": 30, "budget": 60, "recent_window": "30s", "grace": "10s",
        "lag_window": "60s",
    }
    return {**settings, **overrides}


def true_lag(workload: Workload, since: float) -> float:
    """The p90 of the syncs the workload made since `since` (wall time), by its own record."""
    return quantile(workload.stats.true_lags(since, "orders_by_customer"), 0.9)


async def test_async_sync_delayed_2s_reads_2s_within_10_percent(
    testbed_cluster: TestbedCluster, make_config: Callable[..., dict[str, Any]]
) -> None:
    async with running_workload(testbed_cluster, "async", rate=10, mode=SyncMode.ASYNC,
                                delay=Delay.fixed(2.0)) as workload:
        model = declared.audit_orders_by_customer(workload.keyspace, **audit_settings())
        model.update(interval="5s", timeout="4s")
        async with serve_exporter(exporter_config(make_config, model)) as running:
            await asyncio.sleep(5)  # rows older than the delay exist before the first look
            began = time.time()
            values = await readings(running, "orders_by_customer", 5)
            truth = true_lag(workload, began - 60)
    reported = quantile(values, 0.5)
    assert abs(reported - 2.0) <= 0.2, (values, truth)
    # And against the workload's own record of each sync's WRITETIME gap.
    assert abs(reported - truth) <= max(0.2, 0.1 * truth), (values, truth)


async def test_in_request_sync_reads_under_200ms(
    testbed_cluster: TestbedCluster, make_config: Callable[..., dict[str, Any]]
) -> None:
    async with running_workload(testbed_cluster, "inreq", rate=10,
                                mode=SyncMode.IN_REQUEST) as workload:
        model = declared.audit_orders_by_customer(workload.keyspace, **audit_settings())
        model.update(interval="5s", timeout="4s")
        by_date = declared.audit_orders_by_date(workload.keyspace,
                                                **audit_settings(samples_per_run=20))
        by_date.update(interval="5s", timeout="4s")
        config = exporter_config(make_config, model, by_date)
        async with serve_exporter(config) as running:
            await asyncio.sleep(2)
            began = time.time()
            values = await readings(running, "orders_by_customer", 3)
            truth = true_lag(workload, began - 60)
            # Rows from a random token on: older rows too, synced in the request all the same.
            dated = await readings(running, "orders_by_date", 2)
            failures = [sum(probe_of(running, n).failures.values())
                        for n in ("orders_by_customer", "orders_by_date")]
            checked = probe_of(running, "orders_by_date").checks
    # In the request, every table is written in one batch with one write time.
    assert truth == 0.0
    assert max(values) < 0.2, values
    assert min(values) >= 0.0
    assert max(dated) < 0.2, dated
    assert failures == [0, 0] and checked > 0


async def test_checkpoint_lag_grows_while_the_projector_stops_and_is_zero_when_idle(
    testbed_cluster: TestbedCluster, make_config: Callable[..., dict[str, Any]]
) -> None:
    async with running_workload(testbed_cluster, "proj", rate=10,
                                mode=SyncMode.PROJECTION) as workload:
        checkpoint = declared.checkpoint_projection(workload.keyspace)
        sentinel = declared.sentinel_projection(workload.keyspace, poll_interval="50ms",
                                                sentinel_timeout="20s")
        sentinel.update(interval="2s", timeout="1500ms")
        config = exporter_config(make_config, checkpoint, sentinel)
        async with serve_exporter(config) as running:
            def lag(name: str = "orders_projection") -> float | None:
                return running.sample("cqrs_read_model_sync_lag_seconds", {"read_model": name})

            await poll_until(lambda: (v := lag()) is not None and v < 1.0, timeout=30,
                             message="a caught-up projection")
            # A sentinel seen end to end (an outstanding one also reports its age as lag).
            first_sentinel = probe_of(running, "orders_sentinel")
            await poll_until(lambda: first_sentinel.checks >= 1, timeout=30,
                             message="a first sentinel through the projector")

            checkpoint_probe = probe_of(running, "orders_projection")
            await workload.stop_projector()
            await asyncio.sleep(2.0)
            first, first_at = checkpoint_probe.lag, checkpoint_probe.lag_measured_at
            await asyncio.sleep(6.0)
            second, second_at = checkpoint_probe.lag, checkpoint_probe.lag_measured_at
            assert first is not None and second is not None
            assert first_at is not None and second_at is not None
            slope = (second - first) / (second_at - first_at)
            assert 0.75 <= slope <= 1.25, (first, second, slope)
            assert second >= 6.0
            # The end-to-end sentinel sees the stall too: its age is its lag.
            sentinel_lag = lag("orders_sentinel")
            assert sentinel_lag is not None and sentinel_lag >= 4.0

            workload.start_projector()
            restarted = time.monotonic()
            seen: list[float | None] = []
            try:
                await poll_until(lambda: seen.append(v := lag()) or (v is not None and v < 1.0),
                                 timeout=10, interval=0.5,
                                 message="checkpoint lag back under 1 s")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; every 0.5 s it read {seen}") from None
            recovered_in = time.monotonic() - restarted

            sentinel_probe = probe_of(running, "orders_sentinel")
            await poll_until(lambda: sentinel_probe.outstanding is None, timeout=30,
                             message="the last sentinel seen")

        # Idle: no commands, no sentinels, the projector caught up. The last event ages; the
        # lag does not.
        workload.knobs.rate = 0
        await poll_until(workload.projector_caught_up, timeout=20, interval=0.5,
                         message="the projector at the head")
        async with serve_exporter(exporter_config(make_config, checkpoint)) as idle_exporter:
            idle = await readings(idle_exporter, "orders_projection", 5)
    assert recovered_in <= 10.0
    assert idle == [0.0] * 5
    assert checkpoint_probe.clock_ahead < 0.5  # one machine, one clock
    assert sentinel_probe.checks >= 2
    assert sum(sentinel_probe.failures.values()) == 0


async def test_failure_ratio_counts_missing_and_mismatch_apart_and_flags_only_a_real_breach(
    testbed_cluster: TestbedCluster, make_config: Callable[..., dict[str, Any]]
) -> None:
    # Every row of both keyspaces is checked once: the counts must equal the ground truth.
    # Seed 8 makes 10 of the 1,000 syncs fail (6 dropped, 4 wrong): exactly 1 %.
    async with (
        running_workload(testbed_cluster, "fail1", start=False, seed=8, rate=0,
                         failure_rate=0.01, failure_kind=FailureKind.MIXED) as faulty,
        running_workload(testbed_cluster, "fail0", start=False, seed=5, rate=0) as clean,
    ):
        await asyncio.gather(faulty.run_commands(1000), clean.run_commands(2000))
        assert faulty.stats.commands == 1000 and clean.stats.commands == 2000

        def full_audit(name: str, ks: str) -> dict[str, Any]:
            model = declared.audit_orders_by_customer(
                ks, samples_per_run=2500, budget=600, grace="1s", lag_window="10m",
                recent_query=(
                    f"SELECT order_id, customer_id, created_at, total, status, "
                    f"WRITETIME(status) AS written_at FROM {ks}.orders_by_id LIMIT :max_rows"
                ),
            )
            return {**model, "name": name, "interval": "6s", "timeout": "5s"}

        config = exporter_config(make_config, full_audit("one_percent", faulty.keyspace),
                                 full_audit("zero_percent", clean.keyspace))
        # 3,000 rows audited within minutes: more than the default request budget allows
        # (which would stretch the audits' schedules, as it should).
        config["probes"]["budget"] = {"requests_per_second_per_datacenter": 400}
        async with serve_exporter(config) as running:
            faulty_probe = probe_of(running, "one_percent")
            clean_probe = probe_of(running, "zero_percent")
            await poll_until(lambda: faulty_probe.checks >= 1000 and clean_probe.checks >= 2000,
                             timeout=180, message="every row checked")
            faulty_obs = observation(faulty_probe, Check.SYNC_FAILURE_RATE)
            clean_obs = observation(clean_probe, Check.SYNC_FAILURE_RATE)
            sample = running.sample
            missing = sample("cqrs_sync_failures_total",
                             {"read_model": "one_percent", "reason": "missing"})
            mismatch = sample("cqrs_sync_failures_total",
                              {"read_model": "one_percent", "reason": "mismatch"})
            stale = sample("cqrs_sync_failures_total",
                           {"read_model": "one_percent", "reason": "stale"})
            checks = sample("cqrs_sync_checks_total", {"read_model": "one_percent"})
            lower = sample("cqrs_sync_failure_ratio_lower", {"read_model": "one_percent"})
            upper = sample("cqrs_sync_failure_ratio_upper", {"read_model": "one_percent"})
            clean_failures = sample("cqrs_sync_failures_total",
                                    {"read_model": "zero_percent", "reason": "missing"})
            config_ = running.exporter.config

    truth = faulty.stats.fates["orders_by_customer"]
    assert checks == 1000
    assert (missing, mismatch, stale) == (truth["dropped"], truth["wrong"], 0)
    assert missing > 0 and mismatch > 0
    assert lower is not None and upper is not None and lower <= 0.01 <= upper
    assert faulty_obs.value == pytest.approx((truth["dropped"] + truth["wrong"]) / 1000)
    assert faulty_obs.compared == lower and faulty_obs.samples == 1000
    assert judge(faulty_obs, config_) is Status.DEGRADED  # the lower bound is above 0.1 %

    assert clean_probe.checks == 2000 and clean_failures == 0
    assert clean_obs.value == 0.0 and clean_obs.compared == 0.0 and clean_obs.sufficient
    assert judge(clean_obs, config_) is Status.UP


class CountingConnection:
    """The exporter's real connection, with the start time of every request it sends."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.starts: list[float] = []

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.starts.append(time.monotonic())
        return await self._connection.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def most_in_any_second(starts: list[float]) -> int:
    most = 0
    for i, start in enumerate(starts):
        # A window [start, start + 1 s); a hair of slack for clock rounding.
        most = max(most, sum(1 for t in starts[i:] if t < start + 1.0 - 1e-6))
    return most


async def test_the_audit_never_exceeds_its_query_budget(
    testbed_cluster: TestbedCluster, make_config: Callable[..., dict[str, Any]]
) -> None:
    async with running_workload(testbed_cluster, "budget", rate=20) as workload:
        budget = 8
        model = declared.audit_orders_by_date(
            workload.keyspace, **audit_settings(samples_per_run=200, budget=budget)
        )
        model.update(interval="4s", timeout="3500ms")
        async with serve_exporter(exporter_config(make_config, model)) as running:
            probe = probe_of(running, "orders_by_date")
            counting = CountingConnection(probe.connection)
            probe.connection = counting  # type: ignore[assignment]
            await asyncio.sleep(12.0)
            counted = running.sample("cqrs_read_model_queries_total",
                                     {"read_model": "orders_by_date"})
            starts = list(counting.starts)
    assert len(starts) >= 2 * budget
    # Never more than the budget in any second, and the budget is what holds it back: with
    # 200 rows to check a run would send far more.
    assert most_in_any_second(starts) == budget
    assert counted is not None and counted >= len(starts)
