"""The reference CQRS workload on the real testbed: its three sync modes and its thread."""

from __future__ import annotations

import random
import time
import uuid

import pytest
from cassandra.util import uuid_from_time

from testbed import TestbedCluster
from testbed.workload import Knobs, SyncMode, Workload, WorkloadThread
from testbed.workload.faults import Delay, FailureKind
from testbed.workload.orders import new_order
from testbed.workload.projector import uuid_seconds
from tests.support import poll_until


def workload_on(cluster: TestbedCluster, name: str, knobs: Knobs, seed: int | None = None
                ) -> Workload:
    """A workload in a keyspace of its own on the testbed, replicated once in every datacenter."""
    return Workload(cluster.contact_points, cluster.write_datacenter,
                    keyspace=f"wl_{name}_{int(time.time()) % 100000}",
                    replication=dict.fromkeys(cluster.datacenters, 1),
                    knobs=knobs, seed=seed)


@pytest.mark.cluster
async def test_each_sync_mode_reaches_the_read_models(testbed_cluster: TestbedCluster) -> None:
    workload = workload_on(testbed_cluster, "modes", Knobs(rate=0, mode=SyncMode.IN_REQUEST),
                           seed=1)
    await workload.start()
    ks = workload.keyspace

    async def count(table: str) -> int:
        rows = await workload.execute(f"SELECT count(*) FROM {ks}.{table}")
        return int(rows[0][0])

    try:
        await workload.run_commands(20)
        assert await count("orders_by_customer") == 20 and await count("orders_by_date") == 20

        workload.knobs.mode, workload.knobs.delay = SyncMode.ASYNC, Delay.fixed(1.0)
        await workload.run_commands(10)
        assert workload.pending_syncs > 0  # the consumer has not written them yet
        await poll_until(lambda: workload.pending_syncs == 0, timeout=30,
                         message="async syncs done")
        assert await count("orders_by_customer") == 30

        await workload.stop_projector()
        workload.knobs.mode = SyncMode.PROJECTION
        await workload.run_commands(10)
        assert workload.stats.events_appended == 10
        assert await count("orders_by_customer") == 30  # no projector: nothing projected
        workload.start_projector()
        await poll_until(workload.projector_caught_up, timeout=30, interval=0.3,
                         message="projector caught up")
        assert await count("orders_by_customer") == 40
        assert await workload.checkpoint() is not None

        workload.knobs.mode, workload.knobs.failure_rate = SyncMode.IN_REQUEST, 1.0
        workload.knobs.failure_kind = FailureKind.DROP
        await workload.run_commands(5)
        assert await count("orders_by_customer") == 40  # all five dropped
        assert workload.stats.fates["orders_by_customer"]["dropped"] == 5
        lags = workload.stats.true_lags(table="orders_by_customer")
        assert len(lags) == 40 and min(lags) >= 0.0
    finally:
        await workload.stop(drain=2.0)


@pytest.mark.cluster
def test_the_workload_runs_from_a_thread_at_its_rate(testbed_cluster: TestbedCluster) -> None:
    workload = workload_on(testbed_cluster, "thread", Knobs(rate=20))
    runner = WorkloadThread(workload).start(projector=False)
    try:
        began = time.monotonic()
        time.sleep(3.0)
        runner.knobs.rate = 0  # knobs change while it runs
        issued = workload.stats.commands + workload.stats.command_errors
        elapsed = time.monotonic() - began
        time.sleep(1.0)
        after = workload.stats.commands + workload.stats.command_errors
    finally:
        runner.stop()
    assert 0.6 * 20 * elapsed <= issued <= 20 * elapsed + 25
    assert after - issued <= 30  # only those already in flight
    assert workload.stats.command_errors == 0


@pytest.mark.cluster
async def test_an_event_acknowledged_after_the_checkpoint_passed_it_is_still_projected(
    testbed_cluster: TestbedCluster,
) -> None:
    """A slow writer's event carries a TIMEUUID older than events projected before it
    arrives: the projector's sweep projects it late instead of losing it."""
    workload = workload_on(testbed_cluster, "late", Knobs(rate=0, mode=SyncMode.PROJECTION), seed=2)
    await workload.start()
    ks = workload.keyspace
    try:
        await workload.run_commands(5)
        await poll_until(workload.projector_caught_up, timeout=30, interval=0.3,
                         message="projector caught up")
        passed = await workload.checkpoint()
        assert passed is not None
        late = new_order(random.Random(3), [uuid.uuid4()])
        # Its TIMEUUID taken a second before the newest event projected: the checkpoint is
        # past it when it is written.
        taken = uuid_from_time(uuid_seconds(passed) - 1.0)
        await workload.append_event(late, created=True, event_id=taken)

        async def projected() -> bool:
            rows = await workload.execute(
                f"SELECT order_id FROM {ks}.orders_by_customer WHERE customer_id = %s",
                (late.customer_id,),
            )
            return [row.order_id for row in rows] == [late.order_id]

        await poll_until(projected, timeout=15, interval=0.3, message="the late event projected")
        assert workload.stats.events_projected_late == 1
    finally:
        await workload.stop(drain=2.0)
