"""Per-replica replication reads on a testbed with two nodes per datacenter.

The exporter is served with `read_mode: per_replica` on a monitoring keyspace of its own at
replication factor 2, so both nodes of each read datacenter hold the sentinel row. On a
healthy cluster both are read, both are counted, both catch up with every sentinel, and the
lag of each read datacenter (the worst replica's) is exported and judged.

`multinode_testbed` (tests/production/conftest.py) is a TestbedCluster with
`nodes_per_dc == 2` and `nodes_in(dc)`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.results import Check
from probes.replication.writer import WriterProbe
from tests.support import RunningExporter, poll_until, serve_exporter

pytestmark = pytest.mark.cluster

HEALTHY = 0.2
"""A healthy read datacenter's lag bound, as in tests/cluster/test_replication_cluster.py."""


def per_replica_config(cluster: Any) -> dict[str, Any]:
    """Writer mode, each replica read on its own, in a fresh keyspace every replica holds."""
    return {
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {
            "write": cluster.write_datacenter,
            "read": list(cluster.read_datacenters),
        },
        "monitoring": {
            "create_schema": True,
            "keyspace": f"replicas_{uuid.uuid4().hex[:8]}",
            "replication_factor": cluster.nodes_per_dc,
            "writer_id": f"test-{uuid.uuid4().hex[:8]}",
        },
        "probes": {"replication": {"read_mode": "per_replica"}, "latency": {"enabled": False}},
    }


def pair(cluster: Any, target: str) -> dict[str, str]:
    return {"source_datacenter": cluster.write_datacenter, "target_datacenter": target}


def writer_of(running: RunningExporter) -> WriterProbe:
    (probe,) = [p for p in running.exporter.probes if isinstance(p, WriterProbe)]
    return probe


async def scrape(running: RunningExporter) -> dict[tuple[str, str], float]:
    """(sample name, target datacenter) -> value of the replication series on /metrics."""
    status, text = await running.get("/metrics")
    assert status == 200
    return {
        (s.name, s.labels["target_datacenter"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("cqrs_replication_") and "target_datacenter" in s.labels
        and not {"le", "reason"} & set(s.labels)
    }


def counts(values: dict[tuple[str, str], float], dc: str) -> tuple[float | None, float | None]:
    """(replicas, replicas caught up) of one read datacenter, as scraped."""
    return (
        values.get(("cqrs_replication_replicas", dc)),
        values.get(("cqrs_replication_replicas_caught_up", dc)),
    )


async def read_per_replica(running: RunningExporter, cluster: Any) -> None:
    """Wait until every read datacenter is read through both of its replicas."""

    async def both_counted() -> bool:
        values = await scrape(running)
        return all(counts(values, dc)[0] == 2 for dc in cluster.read_datacenters)

    # The driver learns the new keyspace's replicas with its schema; until then a datacenter
    # is read as a whole and has no replica counts.
    await poll_until(both_counted, timeout=60, interval=0.2, message="two replicas per read DC")


async def test_both_replicas_of_each_read_datacenter_are_read_counted_and_caught_up(
    multinode_testbed: Any,
) -> None:
    cluster = multinode_testbed
    assert cluster.nodes_per_dc == 2
    async with serve_exporter(per_replica_config(cluster)) as running:
        await read_per_replica(running, cluster)
        probe = writer_of(running)
        for dc in cluster.read_datacenters:
            read = {probe.replicas.host(key) for d, key in probe.readers if d == dc}
            assert {h.address for h in read if h is not None} == {
                n.address for n in cluster.nodes_in(dc)
            }, f"{dc} is not read through each of its nodes"

        async def all_caught_up() -> bool:
            values = await scrape(running)
            return all(counts(values, dc) == (2, 2) for dc in cluster.read_datacenters)

        await poll_until(all_caught_up, timeout=30, interval=0.05, message="all caught up")

        # Healthy for a while: every scrape counts two replicas and has a lag; nearly all find
        # both caught up (right after each sentinel's write they are behind for a few ms).
        scrapes: list[dict[tuple[str, str], float]] = []
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            scrapes.append(await scrape(running))
            await asyncio.sleep(0.05)
        assert len(scrapes) >= 20
        for dc in cluster.read_datacenters:
            totals = [counts(v, dc)[0] for v in scrapes]
            assert totals == [2] * len(scrapes), (dc, totals)
            caught = [counts(v, dc)[1] for v in scrapes]
            assert all(c is not None and 0 <= c <= 2 for c in caught), (dc, caught)
            assert caught.count(2) >= 0.8 * len(caught), (dc, caught)
            lags = [v.get(("cqrs_replication_lag_seconds", dc)) for v in scrapes]
            assert all(lag is not None for lag in lags), (dc, lags)
            ordered = sorted(lag for lag in lags if lag is not None)
            assert ordered[int(0.95 * (len(ordered) - 1))] < HEALTHY, (dc, ordered[-5:])
            assert running.sample("cqrs_replication_sentinels_lost_total", pair(cluster, dc)) == 0

        # The same lag feeds the health check, one component per read datacenter, UP.
        readings = {o.component: o for o in probe.observations()}
        assert set(readings) == set(cluster.read_datacenters)
        for observation in readings.values():
            assert observation.check is Check.REPLICATION_LAG
            assert observation.value is not None and observation.value < 1.0, readings

        # No series names a node.
        _, text = await running.get("/metrics")
        for dc in cluster.read_datacenters:
            for node in cluster.nodes_in(dc):
                assert f'"{node.address}' not in text, f"{node.address} appears on /metrics"


def local_one_config(cluster: Any) -> dict[str, Any]:
    config = per_replica_config(cluster)
    config["probes"]["replication"]["read_mode"] = "local_one"
    return config


@pytest.mark.fault
async def test_a_stalled_replica_is_hidden_by_local_one_and_reported_per_replica(
    multinode_testbed: Any,
) -> None:
    """One of eu-west's two replicas stops applying writes (SIGSTOP) while the other serves.

    A replica cannot be made stale through the replication proxies alone: a write enters a
    remote datacenter once, at one replica, which forwards it to the others over the local
    network, so a delay on one node's ingress delays every replica or none of them. A paused
    replica is the stale one here; what matters is what each read mode makes of it."""
    cluster = multinode_testbed
    dc = cluster.read_datacenters[-1]
    async with serve_exporter(per_replica_config(cluster)) as replicas, serve_exporter(
        local_one_config(cluster)
    ) as local_one:
        await read_per_replica(replicas, cluster)
        await poll_until(
            lambda: all(
                (lag := running.sample("cqrs_replication_lag_seconds", pair(cluster, dc)))
                is not None and lag < HEALTHY
                for running in (replicas, local_one)
            ),
            timeout=60, interval=0.1, message="both modes healthy",
        )
        samples: list[tuple[float, float, float | None]] = []
        await asyncio.to_thread(cluster.pause, dc, 2)
        try:
            end = time.monotonic() + 8.0
            while time.monotonic() < end:
                worst = replicas.sample("cqrs_replication_lag_seconds", pair(cluster, dc))
                seen = local_one.sample("cqrs_replication_lag_seconds", pair(cluster, dc))
                caught = (await scrape(replicas)).get(("cqrs_replication_replicas_caught_up", dc))
                if worst is not None and seen is not None:
                    samples.append((worst, seen, caught))
                await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(cluster.resume, dc, 2)

        async def caught_up_again() -> bool:
            return counts(await scrape(replicas), dc) == (2, 2)

        await poll_until(caught_up_again, timeout=60, interval=0.1, message="both caught up")

    worst_peak = max(w for w, _, _ in samples)
    local_one_peak = max(s for _, s, _ in samples)
    assert worst_peak >= 5.0, f"per-replica mode peaked at {worst_peak:.2f} s"
    assert local_one_peak < 1.0, f"LOCAL_ONE mode peaked at {local_one_peak:.2f} s"
    assert min(c for _, _, c in samples if c is not None) == 1
    print(f"one replica of {dc} paused 8 s: per-replica lag peaked at {worst_peak:.2f} s, "
          f"LOCAL_ONE at {local_one_peak:.2f} s")
