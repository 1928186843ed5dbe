"""The connection: per-datacenter profiles really route to their datacenter, without blocking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from exporter.config import Consistency, parse_config
from exporter.connection import CassandraConnection, NotConnected, profile_name
from tests.support import answering_connection

pytestmark = pytest.mark.cluster


@pytest.fixture
async def connection(
    make_config: Callable[..., dict[str, Any]], testbed_cluster: Any
) -> AsyncIterator[CassandraConnection]:
    conn = await answering_connection(parse_config(make_config()), timeout=60)
    yield conn
    await conn.close()


async def test_each_datacenter_profile_is_served_by_that_datacenter(
    connection: CassandraConnection, testbed_cluster: Any
) -> None:
    for dc in testbed_cluster.datacenters:
        for _ in range(5):  # several requests: the round robin never strays to another DC
            rows = await connection.execute(
                "SELECT data_center, rpc_address FROM system.local", datacenter=dc
            )
            assert rows[0].data_center == dc
            assert str(rows[0].rpc_address) == testbed_cluster.node(dc).address


async def test_profiles_carry_the_configured_consistency(connection: CassandraConnection) -> None:
    cluster = connection._cluster
    assert cluster is not None
    write = cluster.profile_manager.profiles[profile_name("us-east", write=True)]
    read = cluster.profile_manager.profiles[profile_name("eu-west")]
    from cassandra import ConsistencyLevel

    assert write.consistency_level == ConsistencyLevel.LOCAL_QUORUM
    assert read.consistency_level == ConsistencyLevel.LOCAL_ONE


async def test_profiles_use_no_remote_hosts(connection: CassandraConnection) -> None:
    cluster = connection._cluster
    assert cluster is not None
    for dc in ("us-east", "ca-central", "eu-west"):
        policy = cluster.profile_manager.profiles[profile_name(dc)].load_balancing_policy
        child = policy._child_policy
        assert (child.local_dc, child.used_hosts_per_remote_dc) == (dc, 0)


async def test_a_statement_level_consistency_overrides_the_profile(
    connection: CassandraConnection,
) -> None:
    rows = await connection.execute(
        "SELECT data_center FROM system.local",
        datacenter="ca-central",
        consistency=Consistency.ONE,
    )
    assert rows[0].data_center == "ca-central"


async def test_execute_does_not_block_the_event_loop(connection: CassandraConnection) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await asyncio.gather(
            *(
                connection.execute("SELECT data_center FROM system.local", datacenter=dc)
                for dc in ("us-east", "ca-central", "eu-west")
                for _ in range(20)
            )
        )
    finally:
        task.cancel()
    assert ticks > 0


async def test_execute_before_connecting_says_not_connected(
    make_config: Callable[..., dict[str, Any]],
) -> None:
    conn = CassandraConnection(parse_config(make_config()))
    with pytest.raises(NotConnected):
        await conn.execute("SELECT now() FROM system.local", datacenter="us-east")
    await conn.close()
