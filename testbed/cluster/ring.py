"""Whether the nodes agree on the ring: gossip views, failure detectors, and system_auth."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from testbed.cluster.node import Node
from testbed.cluster.settings import POLL_SECONDS, SUPERUSER
from testbed.errors import TestbedError

if TYPE_CHECKING:
    from cassandra.cluster import Session


@dataclass(frozen=True)
class GossipView:
    """What one node's gossip says about one endpoint."""

    dc: str | None
    generation: int | None
    status: str
    schema: str | None


@contextmanager
def node_session(node: Node, password_auth: bool) -> Iterator[Session]:
    """A driver session that talks to `node` only (over TLS when the node speaks it)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    auth = PlainTextAuthProvider(*SUPERUSER) if password_auth else None
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([node.address]), request_timeout=20.0
    )
    cluster = Cluster(
        contact_points=[node.address],
        port=node.native_port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        ssl_context=node.client_tls.context() if node.client_tls is not None else None,
        connect_timeout=10,
        control_connection_timeout=10,
        schema_metadata_enabled=False,
        token_metadata_enabled=False,
    )
    try:
        yield cluster.connect(wait_for_all_pools=True)
    finally:
        cluster.shutdown()


def wait_for_ring(
    nodes: Sequence[Node], deadline: float, *, password_auth: bool, probe: bool = False
) -> None:
    """Wait until the running nodes agree on the ring.

    Each must see every other NORMAL, in its DC, on its current generation (so a
    restart is known) and on one schema version. With `probe`, and when every node
    runs, each must also coordinate a read at consistency ALL over system_auth,
    which has a replica on every node: that fails while any node's failure
    detector still holds a peer down (e.g. just after a pause ends).
    """
    running = [node for node in nodes if node.state() == "running"]
    probe = probe and len(running) == len(nodes)
    problem: str | None = "no answer yet"
    while True:
        try:
            with ExitStack() as stack:
                sessions = {
                    node.address: stack.enter_context(node_session(node, password_auth))
                    for node in running
                }
                views = {address: gossip_view(session) for address, session in sessions.items()}
                problem = ring_problem(running, views)
                if problem is None and probe:
                    for node in running:
                        try:
                            read_at_all(sessions[node.address])
                        except Exception as exc:
                            name = type(exc).__name__
                            problem = f"{node.name} does not yet see every node up ({name})"
                            break
            if problem is None:
                return
        except Exception as exc:  # the driver's errors have no common base
            problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise TestbedError(f"the nodes did not agree on the ring in time: {problem}")
        time.sleep(POLL_SECONDS * 2)


def replicate_system_auth(
    seed: Node, replication: dict[str, int], *, password_auth: bool, deadline: float
) -> None:
    """Give system_auth a replica on every node (`replication`: replicas per datacenter).

    Logins then survive a stopped node, and a read of it at ALL tells whether a
    coordinator sees every node up. With password auth the default superuser, created
    before the change, still has to be repaired onto the new replicas.
    """
    options = ", ".join(f"'{dc}': {count}" for dc, count in replication.items())
    statement = (
        "ALTER KEYSPACE system_auth WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', {options}}}"
    )
    while True:
        try:
            with node_session(seed, password_auth) as session:
                session.execute(statement)
            return
        except Exception as exc:  # e.g. the default superuser is not created yet
            if time.monotonic() >= deadline:
                raise TestbedError(f"cannot replicate system_auth: {exc}") from exc
            time.sleep(POLL_SECONDS * 2)


def gossip_view(session: Session) -> dict[str, GossipView]:
    """The gossip state of every endpoint known to the node behind `session`, by address."""
    rows = session.execute(
        'SELECT address, dc, generation, status_with_port, "schema" FROM system_views.gossip_info'
    )
    return {
        str(row.address): GossipView(row.dc, row.generation, row.status_with_port or "", row.schema)
        for row in rows
    }


def read_at_all(session: Session) -> None:
    """Coordinate a read at ALL over a keyspace with a replica on every node."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    session.execute(
        SimpleStatement(
            "SELECT role FROM system_auth.roles LIMIT 1", consistency_level=ConsistencyLevel.ALL
        )
    )


def ring_problem(nodes: Sequence[Node], views: dict[str, dict[str, GossipView]]) -> str | None:
    """Why the gossip views of `nodes` do not yet agree, or None when they do."""
    # Gossip knows each node by its broadcast address; the views are by listen address.
    own = {node.address: views[node.address].get(node.broadcast_address) for node in nodes}
    for node in nodes:
        view = views[node.address]
        for other in nodes:
            seen = view.get(other.broadcast_address)
            if seen is None:
                return f"{node.name} does not know {other.name} ({other.broadcast_address})"
            if seen.dc != other.dc:
                return f"{node.name} places {other.name} in {seen.dc}, not {other.dc}"
            if not seen.status.startswith("NORMAL"):
                return f"{node.name} sees {other.name} as {seen.status or 'no status'}"
            itself = own[other.address]
            if itself is None or seen.generation != itself.generation:
                return f"{node.name} has not yet seen {other.name} restart"
            mine = view.get(node.broadcast_address)
            if mine is None or seen.schema != mine.schema:
                return f"{node.name} and {other.name} disagree on the schema version"
    return None
