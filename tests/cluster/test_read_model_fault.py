"""A read model read in a datacenter that stops answering: the probe fails, nothing is counted.

An unreachable read model is an infrastructure failure, not a sync failure: the audit must
report its runs as failed (timeout or unavailable), let its lag go stale (UNKNOWN, not a
made-up number), count no missing rows, and recover when the node comes back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from exporter.health import Status, judge
from exporter.results import Check, FailureReason
from probes.read_models.base import ReadModelBase
from testbed import TestbedCluster
from testbed.workload import Knobs, SyncMode, Workload
from testbed.workload import read_models as declared
from tests.support import poll_until, serve_exporter

pytestmark = [pytest.mark.cluster, pytest.mark.fault]

READ_DC = "eu-west"


async def test_a_paused_read_datacenter_fails_the_audit_without_counting_failures(
    healthy_testbed: TestbedCluster, make_config: Callable[..., dict[str, Any]]
) -> None:
    assert READ_DC in healthy_testbed.read_datacenters
    workload = Workload(
        healthy_testbed.contact_points, healthy_testbed.write_datacenter,
        keyspace=f"rm_fault_{int(time.time()) % 100000}",
        knobs=Knobs(rate=10, mode=SyncMode.IN_REQUEST),
        replication=dict.fromkeys(healthy_testbed.datacenters, 1),
    )
    await workload.start(projector=False)
    try:
        model = declared.audit_orders_by_customer(
            workload.keyspace, samples_per_run=20, budget=40, recent_window="30s",
            grace="60s",  # rows written while the node is paused reach it later by replication
        )
        model.update(name="orders_by_customer_eu", datacenter=READ_DC, interval="2s",
                     timeout="1500ms")
        config = make_config({"probes": {"latency": {"enabled": False},
                                         "replication": {"enabled": False}},
                              "read_models": [model]})
        async with serve_exporter(config) as running:
            probe = next(p for p in running.exporter.probes if isinstance(p, ReadModelBase))
            state = running.exporter.runner.states[probe.name]

            def lag() -> float | None:
                return running.sample("cqrs_read_model_sync_lag_seconds",
                                      {"read_model": "orders_by_customer_eu"})

            def verdict() -> Status:
                reading = next(o for o in probe.observations()
                               if o.check is Check.READ_MODEL_SYNC_LAG)
                return judge(reading, running.exporter.config)

            await poll_until(lambda: lag() is not None and probe.checks > 0, timeout=60,
                             message="a first audit in eu-west")
            assert verdict() is Status.UP
            checks_before = probe.checks

            healthy_testbed.pause(READ_DC)
            paused_at = time.monotonic()
            await poll_until(
                lambda: state.last_outcome is not None and not state.last_outcome.success,
                timeout=20, message="a failed audit run")
            assert state.last_outcome is not None
            assert state.last_outcome.reason in (FailureReason.TIMEOUT, FailureReason.UNAVAILABLE)
            # Three intervals without a reading: the lag is withdrawn, the verdict UNKNOWN.
            await poll_until(lambda: lag() is None, timeout=20, message="the lag withdrawn")
            assert verdict() is Status.UNKNOWN
            paused_for = time.monotonic() - paused_at
            assert sum(probe.failures.values()) == 0

            healthy_testbed.resume(READ_DC)
            await poll_until(lambda: state.last_outcome is not None
                             and state.last_outcome.success and lag() is not None,
                             timeout=60, message="the audit back after resume")
            await poll_until(lambda: probe.checks > checks_before, timeout=30,
                             message="new checks after resume")
            # Rows written during the pause reach eu-west by replication once it is back:
            # the read model there trails until they have, then catches up.
            (recovered,) = await poll_until(
                lambda: (v := lag()) is not None and v < 5.0 and (v,),
                timeout=90, message="eu-west caught up")
            failures = dict(probe.failures)
            reported_failures = running.sample(
                "cqrs_probe_failures_total",
                {"probe": probe.name, "reason": state.last_outcome.reason or "timeout"},
            )
    finally:
        await workload.stop(drain=5.0)
    assert paused_for < 40
    assert sum(failures.values()) == 0
    assert recovered < 5.0
    assert reported_failures is not None
