"""A local Apache Cassandra cluster of N nodes per datacenter, on loopback addresses."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from testbed import processes
from testbed.cluster import ring, security, state
from testbed.cluster.faults import Faults
from testbed.cluster.files import write_node_files
from testbed.cluster.launch import launch, wait_ready
from testbed.cluster.node import Node, NodeStatus
from testbed.cluster.nodetool import run_nodetool
from testbed.cluster.ports import jmx_port, wait_until_free
from testbed.cluster.proxies import ReplicationProxies
from testbed.cluster.settings import (
    CLUSTER_NAME,
    DEFAULT_DATACENTERS,
    DEFAULT_HEAP,
    POLL_SECONDS,
    PROXY_OFFSET,
    STOP_GRACE_SECONDS,
    SUPERUSER,
    check_datacenters,
    check_heap,
    check_net,
    check_nodes_per_dc,
    default_base_dir,
    default_net,
    default_start_timeout,
)
from testbed.errors import TestbedError
from testbed.jars import DEFAULT_VERSION, ensure_jars

log = logging.getLogger("testbed")


class TestbedCluster(Faults):
    """A Cassandra cluster of N nodes per datacenter, run from Maven Central jars.

    With `replication_proxy` (the default) each node's broadcast address is a Toxiproxy
    listener, so that `delay` and `partition` act on replication between datacenters
    while clients still reach every node (see proxies).
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        datacenters: Sequence[str] = DEFAULT_DATACENTERS,
        *,
        nodes_per_dc: int = 1,
        replication_proxy: bool = True,
        net: str | None = None,
        base_dir: Path | str | None = None,
        heap: str = DEFAULT_HEAP,
        cluster_name: str = CLUSTER_NAME,
        password_auth: bool = False,
        tls: str | None = None,
        version: str = DEFAULT_VERSION,
        start_timeout: float | None = None,
        parallel_start: bool = True,
    ) -> None:
        self.datacenters: tuple[str, ...] = check_datacenters(datacenters)
        self.nodes_per_dc = check_nodes_per_dc(nodes_per_dc, self.datacenters)
        self.replication_proxy = replication_proxy
        self.heap = check_heap(heap)
        self.net = net if net is not None else default_net()
        octet = check_net(self.net)
        self.base_dir = Path(base_dir if base_dir is not None else default_base_dir()).resolve()
        self.cluster_name = cluster_name
        self.password_auth = password_auth
        self.tls = security.check_tls_mode(tls)  # None, "server" or "mutual"
        self.version = version
        self.start_timeout = start_timeout if start_timeout is not None else default_start_timeout()
        self.parallel_start = parallel_start
        # Node i of every datacenter before node i + 1 of any: the evenly spaced tokens then
        # alternate between datacenters, and node 1 of the first datacenter is the seed.
        self.nodes: list[Node] = []
        for ordinal in range(1, self.nodes_per_dc + 1):
            for dc in self.datacenters:
                index = len(self.nodes)
                name = dc if self.nodes_per_dc == 1 else f"{dc}-{ordinal}"
                self.nodes.append(Node(
                    index=index,
                    dc=dc,
                    address=f"{self.net}.{index + 1}",
                    jmx_port=jmx_port(index, octet),
                    home=self.base_dir / "nodes" / name,
                    ordinal=ordinal,
                    name=name,
                    broadcast_address=(
                        f"{self.net}.{PROXY_OFFSET + index}" if replication_proxy else None
                    ),
                ))
        self.proxies = ReplicationProxies(self.nodes, self.base_dir, octet)
        self.tls_material = (
            security.tls_material(self.base_dir / "tls", self.contact_points) if self.tls else None
        )
        for node in self.nodes:
            node.client_tls = self.client_tls
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        # The process that ran up(): while it lives, the testbed is its own.
        self.owner_pid: int | None = None

    # --- description -------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"TestbedCluster(datacenters={self.datacenters!r}, net={self.net!r}, "
            f"base_dir={str(self.base_dir)!r})"
        )

    @property
    def contact_points(self) -> list[str]:
        return [node.address for node in self.nodes]

    @property
    def write_datacenter(self) -> str:
        return self.datacenters[0]

    @property
    def read_datacenters(self) -> tuple[str, ...]:
        return self.datacenters[1:]

    @property
    def replication_factor(self) -> dict[str, int]:
        """A replica on every node: the replication for keyspaces made on this testbed."""
        return {dc: self.nodes_per_dc for dc in self.datacenters}

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) of the superuser when password auth is on, else None."""
        return SUPERUSER if self.password_auth else None

    @property
    def client_tls(self) -> security.ClientTls | None:
        """The CA to trust (and the client certificate, under mutual TLS); None without TLS."""
        if self.tls_material is None:
            return None
        return self.tls_material.client(with_cert=self.tls == "mutual")

    @property
    def state_path(self) -> Path:
        return self.base_dir / state.STATE_FILE

    def nodes_in(self, dc: str) -> list[Node]:
        """The nodes of datacenter `dc`, node 1 first."""
        found = [node for node in self.nodes if node.dc == dc]
        if not found:
            raise TestbedError(
                f"unknown datacenter {dc!r}; the testbed has {', '.join(self.datacenters)}"
            )
        return found

    def node(self, dc: str, ordinal: int = 1) -> Node:
        """Node `ordinal` (1, 2, ...) of datacenter `dc`."""
        return self.select(dc, ordinal)[0]

    def select(self, dc: str, ordinal: int | None = None) -> list[Node]:
        """Node `ordinal` of `dc`, or all of its nodes when `ordinal` is None."""
        self.refresh()
        nodes = self.nodes_in(dc)
        if ordinal is None:
            return nodes
        if not 1 <= ordinal <= len(nodes):
            raise TestbedError(f"{dc} has nodes 1 to {len(nodes)}, not {ordinal}")
        return [nodes[ordinal - 1]]

    def status(self) -> list[NodeStatus]:
        self.refresh()
        result = []
        for node in self.nodes:
            node_state = node.state()
            pid = node.live_pid()
            result.append(
                NodeStatus(
                    name=node.name,
                    dc=node.dc,
                    address=node.address,
                    pid=pid,
                    state=node_state,
                    cql=node_state == "running" and node.cql_answers(),
                    rss_bytes=processes.rss_bytes(pid) if pid is not None else None,
                )
            )
        return result

    def is_running(self) -> bool:
        """Whether any node of this testbed has a live server process."""
        self.refresh()
        return any(node.live_pid() is not None for node in self.nodes)

    # --- persisted state ---------------------------------------------------------

    def save_state(self) -> None:
        settings = {
            "cluster_name": self.cluster_name,
            "version": self.version,
            "net": self.net,
            "heap": self.heap,
            "password_auth": self.password_auth,
            "tls": self.tls,
            "owner_pid": self.owner_pid,
            "datacenters": list(self.datacenters),
            "nodes_per_dc": self.nodes_per_dc,
            "replication_proxy": self.replication_proxy,
            "proxy_pid": self.proxies.pid,
        }
        state.save(self.base_dir, settings, self.nodes)

    @classmethod
    def running(cls, base_dir: Path | str | None = None) -> TestbedCluster | None:
        """The testbed saved in `base_dir` if any of its nodes runs, else None."""
        try:
            cluster = cls.load(base_dir)
        except TestbedError:
            return None
        return cluster if cluster.is_running() else None

    @classmethod
    def load(cls, base_dir: Path | str | None = None) -> TestbedCluster:
        """The testbed whose state was saved in `base_dir` (by this or another process)."""
        directory = Path(base_dir if base_dir is not None else default_base_dir()).resolve()
        saved = state.read(directory)
        cluster = cls(
            saved["datacenters"],
            nodes_per_dc=saved.get("nodes_per_dc", 1),
            replication_proxy=saved.get("replication_proxy", False),
            net=saved["net"],
            base_dir=directory,
            heap=saved["heap"],
            cluster_name=saved["cluster_name"],
            password_auth=saved["password_auth"],
            tls=saved.get("tls"),
            version=saved["version"],
        )
        for node, saved_node in zip(cluster.nodes, saved["nodes"], strict=True):
            node.pid = saved_node["pid"]
        cluster.owner_pid = saved.get("owner_pid")
        cluster.proxies.pid = saved.get("proxy_pid")
        return cluster

    # --- lifecycle ---------------------------------------------------------------

    def up(self) -> TestbedCluster:
        """Start every node on fresh data; return once all answer CQL and see each other up."""
        lib = ensure_jars(self.version)
        self._stop_leftovers()
        wait_until_free(endpoint for node in self.nodes for endpoint in node.endpoints())
        if self.replication_proxy and (busy := self.proxies.free_error()) is not None:
            raise TestbedError(f"{busy}; another testbed may be running on this net")
        self.owner_pid = os.getpid()
        write_node_files(
            self.base_dir,
            self.nodes,
            cluster_name=self.cluster_name,
            password_auth=self.password_auth,
            client_encryption=security.make_node_encryption(self.tls_material, self.tls),
        )
        self.save_state()
        seed, *others = self.nodes
        log.info(
            "starting %d Cassandra node(s): %s (about 30 s each on a small machine)",
            len(self.nodes), ", ".join(f"{n.name} {n.address}" for n in self.nodes),
        )
        try:
            if self.replication_proxy:
                self.proxies.start()
                self.save_state()
            self._launch(seed, lib)
            wait_ready([seed], self.start_timeout)
            if self.parallel_start:
                for node in others:
                    self._launch(node, lib)
                wait_ready(others, self.start_timeout)
            else:
                for node in others:
                    self._launch(node, lib)
                    wait_ready([node], self.start_timeout)
            deadline = time.monotonic() + self.start_timeout
            log.info("waiting until every node sees the others up")
            self._wait_for_ring(deadline)
            ring.replicate_system_auth(
                seed, self.replication_factor, password_auth=self.password_auth,
                deadline=deadline,
            )
            if self.password_auth:
                # The default superuser was created before system_auth had these replicas.
                self.nodetool(self.write_datacenter, "repair", "-full", "system_auth")
            self._wait_for_ring(deadline, probe=True)
        except BaseException:
            self.down()
            raise
        return self

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Wait until every node runs, answers CQL, and every node sees all others up."""
        self.refresh()
        for node in self.nodes:
            node_state = node.state()
            if node_state != "running":
                raise TestbedError(f"node {node.name} is {node_state}")
        deadline = time.monotonic() + timeout
        while silent := [node.name for node in self.nodes if not node.cql_answers()]:
            if time.monotonic() >= deadline:
                raise TestbedError(f"CQL does not answer on {', '.join(silent)}")
            time.sleep(POLL_SECONDS)
        self._wait_for_ring(deadline, probe=True)

    def down(self) -> None:
        """Stop every node: SIGCONT and SIGTERM, then SIGKILL whatever outlives the grace period."""
        self.refresh()
        pids = [pid for node in self.nodes if (pid := node.live_pid()) is not None]
        for pid in pids:
            processes.send(pid, signal.SIGCONT)
            processes.send(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for pid in pids:
            if not processes.wait_for_exit(pid, max(0.0, deadline - time.monotonic())):
                processes.send(pid, signal.SIGKILL)
                processes.wait_for_exit(pid, 30.0)
            self._forget_child(pid)
        for node in self.nodes:
            node.pid = None
            node.release_commitlog()
        self.proxies.stop()
        if self.state_path.parent.is_dir():
            self.save_state()

    def nodetool(self, dc: str, *args: str, timeout: float = 120.0, node: int = 1) -> str:
        """Run nodetool against a node's JMX port and return its output."""
        node_ = self.node(dc, node)
        self._require_pid(node_)
        return run_nodetool(node_, ensure_jars(self.version), self.base_dir, args, timeout)

    def __enter__(self) -> TestbedCluster:
        return self.up()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # --- internals ---------------------------------------------------------------

    def _launch(self, node: Node, lib: Path) -> None:
        child = launch(node, lib, self.heap)
        self._children[child.pid] = child
        self.save_state()

    def _forget_child(self, pid: int) -> None:
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait()

    def _wait_for_ring(self, deadline: float, probe: bool = False) -> None:
        ring.wait_for_ring(self.nodes, deadline, password_auth=self.password_auth, probe=probe)

    def _stop_leftovers(self) -> None:
        """Stop nodes that an earlier, finished run left running in this base dir.

        Nodes whose starting process still lives (e.g. another pytest session using
        the same folder) are left alone: that is an error instead.
        """
        try:
            previous = TestbedCluster.load(self.base_dir)
        except TestbedError:
            return
        owner = previous.owner_pid
        if (
            previous.is_running()
            and owner is not None
            and owner != os.getpid()
            and processes.is_alive(owner)
        ):
            raise TestbedError(
                f"the testbed in {self.base_dir} is in use by process {owner}; give this one "
                "another CQRS_TESTBED_DIR and CQRS_TESTBED_NET"
            )
        previous.down()
