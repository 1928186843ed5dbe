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
from tests.support import RunningExporter, config_for, merge, poll_until, serve_exporter

pytestmark = pytest.mark.cluster

HEALTHY = 0.2
"""A healthy read datacenter's lag bound, as in tests/cluster/test_replication_cluster.py."""
HEALTHY_P95 = 0.5
"""The bound on a healthy stretch's p95: six JVMs on two cores stall now and then."""


def per_replica_config(cluster: Any) -> dict[str, Any]:
    """Writer mode, each replica read on its own, in a fresh keyspace every replica holds."""
    return merge(config_for(cluster), {
        "monitoring": {
            "keyspace": f"replicas_{uuid.uuid4().hex[:8]}",
            "writer_id": f"test-{uuid.uuid4().hex[:8]}",
        },
        "probes": {"replication": {"read_mode": "per_replica"}, "latency": {"enabled": False}},
    })


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
    # A sentinel a second (pinned): right after each write the replicas are behind for the
    # few ms until both have read it, so nearly every scrape finds both caught up. (At 100 ms
    # a scrape often falls in that gap: that is right, and not what this checks.)
    config = merge(
        per_replica_config(cluster),
        {"probes": {"replication": {"interval": "1s", "timeout": "900ms"}}},
    )
    async with serve_exporter(config) as running:
        await read_per_replica(running, cluster)
        probe = writer_of(running)

        def read_through(dc: str) -> set[str]:
            hosts = {probe.replicas.host(key) for d, key in probe.readers if d == dc}
            return {h.address for h in hosts if h is not None}

        # The pollers of the replicas start with the round after the one that found them.
        await poll_until(
            lambda: all(
                read_through(dc) == {n.address for n in cluster.nodes_in(dc)}
                for dc in cluster.read_datacenters
            ),
            timeout=10, interval=0.05, message="each read DC read through each of its nodes",
        )

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
            assert ordered[int(0.95 * (len(ordered) - 1))] < HEALTHY_P95, (dc, ordered[-5:])
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


async def stall(
    cluster: Any, dc: str, node: int, replicas: RunningExporter, local_one: RunningExporter
) -> tuple[float, float, list[float]]:
    """Pause node `node` of `dc` for 8 s: (per-replica peak lag, LOCAL_ONE peak lag, the
    caught-up counts after its first 1.5 s)."""
    async def healthy() -> bool:
        lags = [r.sample("cqrs_replication_lag_seconds", pair(cluster, dc))
                for r in (replicas, local_one)]
        return counts(await scrape(replicas), dc) == (2, 2) and all(
            lag is not None and lag < HEALTHY for lag in lags
        )

    await poll_until(healthy, timeout=90, interval=0.1, message=f"{dc} healthy in both modes")
    samples: list[tuple[float, float, float | None]] = []
    await asyncio.to_thread(cluster.pause, dc, node)
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
        await asyncio.to_thread(cluster.resume, dc, node)

    await poll_until(healthy, timeout=90, interval=0.1, message=f"{dc} caught up again")
    later = [c for _, _, c in samples[15:] if c is not None]
    return max(w for w, _, _ in samples), max(s for _, s, _ in samples), later


@pytest.mark.fault
async def test_a_stalled_replica_is_reported_per_replica_and_only_sometimes_at_local_one(
    multinode_testbed: Any,
) -> None:
    """Each of eu-west's two replicas in turn stops applying writes (SIGSTOP).

    A replica cannot be made stale through the replication proxies alone: a write enters a
    remote datacenter once, at one replica, which forwards it to the others over the local
    network, so a delay on one node's ingress delays every replica or none of them. A paused
    replica is the stale one here; what matters is what each read mode makes of it. Pausing
    the replica that forwards the sentinel's writes into the datacenter stalls the other one
    too, and both modes see it; pausing the other, a LOCAL_ONE read still finds the sentinel
    whenever the driver sends it to the live replica, so that mode sees a fraction of the
    stall, and only the per-replica mode sees all of it."""
    cluster = multinode_testbed
    dc = cluster.read_datacenters[-1]
    async with serve_exporter(per_replica_config(cluster)) as replicas, serve_exporter(
        local_one_config(cluster)
    ) as local_one:
        await read_per_replica(replicas, cluster)
        results = [await stall(cluster, dc, node, replicas, local_one) for node in (1, 2)]

    for node, (worst, seen, later) in zip((1, 2), results, strict=True):
        print(f"{dc} node {node} paused 8 s: per-replica lag peaked at {worst:.2f} s, "
              f"LOCAL_ONE at {seen:.2f} s")
        assert worst >= 5.0, f"per-replica mode missed node {node}'s stall ({worst:.2f} s)"
        # The live replica keeps catching up with each new sentinel, the paused one never
        # does (right after each write neither has it yet: caught up dips to 0 a moment).
        assert max(later) == 1, (node, later)
    hidden = min(seen for _, seen, _ in results)
    assert hidden < 0.5 * min(worst for worst, _, _ in results), "LOCAL_ONE saw every stall"
