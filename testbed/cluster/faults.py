"""The faults a testbed plays: a node's process stopped, paused or killed, and replication
between datacenters delayed or cut through the proxies (see proxies)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from testbed import processes
from testbed.cluster import state
from testbed.cluster.launch import wait_ready
from testbed.cluster.node import Node
from testbed.cluster.proxies import Fault, ReplicationProxies
from testbed.cluster.settings import STOP_GRACE_SECONDS
from testbed.errors import TestbedError
from testbed.jars import ensure_jars


class Faults:
    """The fault methods of TestbedCluster, apart from its start and stop."""

    nodes: list[Node]
    base_dir: Path
    proxies: ReplicationProxies
    replication_proxy: bool
    version: str
    heap: str
    start_timeout: float
    _children: dict[int, subprocess.Popen[bytes]]

    if TYPE_CHECKING:

        def select(self, dc: str, ordinal: int | None = None) -> list[Node]:
            raise NotImplementedError

        def save_state(self) -> None:
            raise NotImplementedError

        def _forget_child(self, pid: int) -> None:
            raise NotImplementedError

        def _launch(self, node: Node, lib: Path) -> None:
            raise NotImplementedError

        def _wait_for_ring(self, deadline: float, probe: bool = False) -> None:
            raise NotImplementedError

    def refresh(self) -> None:
        """Adopt the server PIDs another process saved (e.g. `chaos` restarted a node): a
        node whose remembered process is gone may run again under a PID only the state
        file knows. Reads the state file only when a remembered process is gone."""
        proxy_gone = self.replication_proxy and self.proxies.live_pid() is None
        if not proxy_gone and all(node.live_pid() is not None for node in self.nodes):
            return
        try:
            saved = state.read(self.base_dir)
        except TestbedError:
            return
        pids = {entry.get("name", entry["dc"]): entry.get("pid") for entry in saved["nodes"]}
        for node in self.nodes:
            pid = pids.get(node.name)
            if node.live_pid() is None and isinstance(pid, int) and node.owns(pid):
                node.pid = pid
        if self.proxies.live_pid() is None and isinstance(saved.get("proxy_pid"), int):
            self.proxies.pid = saved["proxy_pid"]

    def _require_pid(self, node: Node) -> int:
        pid = node.live_pid()
        if pid is None:
            raise TestbedError(f"{node.name} is not running")
        return pid

    @staticmethod
    def _wait_for_state(node: Node, wanted: str, failure: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while node.state() != wanted:
            if time.monotonic() >= deadline:
                raise TestbedError(f"{node.name} {failure}")
            time.sleep(0.05)

    # --- faults: a node's process ---------------------------------------------------

    def pause(self, dc: str, node: int | None = None) -> None:
        """Freeze the node(s) with SIGSTOP: they keep their sockets but answer nothing."""
        for each in self.select(dc, node):
            processes.send(self._require_pid(each), signal.SIGSTOP)
            self._wait_for_state(each, "paused", "did not stop on SIGSTOP")

    def resume(self, dc: str, node: int | None = None) -> None:
        """Let paused node(s) run again with SIGCONT."""
        for each in self.select(dc, node):
            processes.send(self._require_pid(each), signal.SIGCONT)
            self._wait_for_state(each, "running", "did not continue on SIGCONT")

    def kill(self, dc: str, node: int | None = None) -> None:
        """Crash the node(s) with SIGKILL and wait for the processes to be gone."""
        for each in self.select(dc, node):
            pid = self._require_pid(each)
            processes.send(pid, signal.SIGKILL)
            if not processes.wait_for_exit(pid, 30.0):
                raise TestbedError(f"{each.name} (pid {pid}) survived SIGKILL for 30 s")
            self._forget_child(pid)
            each.pid = None
            self.save_state()

    def start(self, dc: str, node: int | None = None) -> None:
        """Start stopped node(s) again on their data; return once they answer CQL."""
        nodes = self.select(dc, node)
        for each in nodes:
            if each.live_pid() is not None:
                raise TestbedError(f"{each.name} is already running (pid {each.pid})")
            if not each.config_path.is_file():
                raise TestbedError(f"{each.name} has no configuration in {each.home}; run `up`")
        lib = ensure_jars(self.version)
        try:
            for each in nodes:
                self._launch(each, lib)
            wait_ready(nodes, self.start_timeout)
            self._wait_for_ring(time.monotonic() + self.start_timeout)
        except BaseException:
            for each in nodes:
                if (pid := each.live_pid()) is not None:
                    processes.terminate(pid, STOP_GRACE_SECONDS)
                    self._forget_child(pid)
                each.pid = None
            self.save_state()
            raise

    # --- faults: replication between datacenters (proxies) --------------------------

    def delay(
        self, dc: str, latency_ms: int, *, jitter_ms: int = 0, node: int | None = None
    ) -> None:
        """One-way latency on replication into `dc` (or one of its nodes)."""
        self.proxies.delay(self._proxied(dc, node), latency_ms, jitter_ms)

    def partition(self, dc: str, node: int | None = None) -> None:
        """Cut replication into and out of `dc` (or one of its nodes); CQL still reaches it."""
        self.proxies.partition(self._proxied(dc, node))

    def heal(self, dc: str | None = None, node: int | None = None) -> None:
        """Remove the replication faults of `dc` (or one node), or of every datacenter."""
        if not self.replication_proxy:
            return
        self.proxies.heal(self.nodes if dc is None else self.select(dc, node))

    def faults(self) -> list[Fault]:
        """The replication faults in force."""
        return self.proxies.faults() if self.replication_proxy else []

    def _proxied(self, dc: str, node: int | None) -> list[Node]:
        if not self.replication_proxy:
            raise TestbedError(
                "this testbed was started without replication proxies (--no-replication-proxy)"
            )
        return self.select(dc, node)
