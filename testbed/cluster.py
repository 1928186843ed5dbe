"""A local Apache Cassandra cluster with one node per datacenter, on loopback addresses."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from testbed import config_files, jvm, processes
from testbed.cql_probe import cql_answers
from testbed.errors import TestbedError
from testbed.jars import DEFAULT_VERSION, ensure_jars

if TYPE_CHECKING:
    from cassandra.cluster import Session

DEFAULT_DATACENTERS: tuple[str, ...] = ("us-east", "ca-central", "eu-west")
CLUSTER_NAME = "cqrs-testbed"
DEFAULT_HEAP = "512M"
DEFAULT_START_TIMEOUT = 180.0
STORAGE_PORT = 7000
NATIVE_PORT = 9042
JMX_BASE_PORT = 7100
STATE_FILE = "testbed.json"
READY_LINE = "Starting listening for CQL clients"
STOP_GRACE_SECONDS = 30.0
LOG_TAIL_LINES = 20
POLL_SECONDS = 0.2
SUPERUSER = ("cassandra", "cassandra")

_DC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_HEAP = re.compile(r"^[0-9]+[MmGg]$")


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def default_net() -> str:
    return os.environ.get("CQRS_TESTBED_NET", "127.0.0")


def default_start_timeout() -> float:
    """Seconds each start phase may take: $CQRS_TESTBED_START_TIMEOUT or 180."""
    return float(os.environ.get("CQRS_TESTBED_START_TIMEOUT", DEFAULT_START_TIMEOUT))


def default_base_dir() -> Path:
    override = os.environ.get("CQRS_TESTBED_DIR")
    return Path(override).expanduser() if override else repo_root() / ".testbed"


def _check_net(net: str) -> int:
    """Validate a loopback /24 prefix such as 127.0.0; return its third octet."""
    try:
        first = ipaddress.IPv4Address(f"{net}.1")
    except ValueError:
        raise TestbedError(
            f"net {net!r} is not three octets of an IPv4 address, e.g. 127.0.0"
        ) from None
    if not first.is_loopback or net.count(".") != 2:
        raise TestbedError(
            f"net {net!r} must be a loopback prefix such as 127.0.0 (addresses 127.x.y.1...)"
        )
    octet = int(net.rsplit(".", 1)[1])
    if octet >= 100:
        raise TestbedError(
            f"net {net!r}: the third octet must be below 100 (it offsets the JMX ports)"
        )
    return octet


@dataclass(frozen=True)
class NodeStatus:
    """One node as seen at one moment."""

    dc: str
    address: str
    pid: int | None
    state: str  # "running", "paused" or "stopped"
    cql: bool  # whether the CQL port answered a request
    rss_bytes: int | None


class Node:
    """One Cassandra server of the testbed: its files, ports and process."""

    def __init__(self, index: int, dc: str, address: str, jmx_port: int, home: Path) -> None:
        self.index = index
        self.dc = dc
        self.address = address
        self.jmx_port = jmx_port
        self.home = home
        self.native_port = NATIVE_PORT
        self.storage_port = STORAGE_PORT
        self.pid: int | None = None
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"Node(dc={self.dc!r}, address={self.address!r}, pid={self.pid})"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def config_path(self) -> Path:
        return self.conf_dir / "cassandra.yaml"

    @property
    def rackdc_path(self) -> Path:
        return self.conf_dir / "cassandra-rackdc.properties"

    @property
    def logback_path(self) -> Path:
        return self.conf_dir / "logback.xml"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def system_log(self) -> Path:
        return self.log_dir / "system.log"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "stdout.log"

    def data_dirs(self) -> dict[str, Path]:
        return {
            name: self.home / name
            for name in ("data", "commitlog", "hints", "saved_caches", "cdc_raw")
        }

    def _config_argument(self) -> str:
        return f"-Dcassandra.config={self.config_path.as_uri()}"

    def owns(self, pid: int) -> bool:
        """Whether `pid` is this node's Cassandra server (and not a recycled PID)."""
        args = processes.cmdline(pid)
        return jvm.SERVER_MAIN in args and self._config_argument() in args

    def live_pid(self) -> int | None:
        """The PID of this node's server if it is alive, else None."""
        if self.pid is not None and processes.is_alive(self.pid) and self.owns(self.pid):
            return self.pid
        return None

    def state(self) -> str:
        pid = self.live_pid()
        if pid is None:
            return "stopped"
        return "paused" if processes.proc_state(pid) in ("T", "t") else "running"

    def cql_answers(self, timeout: float = 2.0) -> bool:
        return cql_answers(self.address, self.native_port, timeout)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the node's system.log, or of its stdout if there is no log."""
        for path in (self.system_log, self.stdout_log):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if text.strip():
                return "\n".join(text.splitlines()[-lines:])
        return "(no log output)"


class TestbedCluster:
    """A Cassandra cluster of one node per datacenter, run from Maven Central jars."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        datacenters: Sequence[str] = DEFAULT_DATACENTERS,
        *,
        net: str | None = None,
        base_dir: Path | str | None = None,
        heap: str = DEFAULT_HEAP,
        cluster_name: str = CLUSTER_NAME,
        password_auth: bool = False,
        version: str = DEFAULT_VERSION,
        start_timeout: float | None = None,
        parallel_start: bool = True,
    ) -> None:
        self.datacenters: tuple[str, ...] = tuple(datacenters)
        if not self.datacenters:
            raise TestbedError("a testbed needs at least one datacenter")
        for dc in self.datacenters:
            if not _DC_NAME.match(dc):
                raise TestbedError(f"datacenter name {dc!r} must be letters, digits, '-' or '_'")
        if len(set(self.datacenters)) != len(self.datacenters):
            raise TestbedError(f"datacenter names repeat: {', '.join(self.datacenters)}")
        if not _HEAP.match(heap):
            raise TestbedError(f"heap {heap!r} must look like 512M or 1G")
        self.net = net if net is not None else default_net()
        octet = _check_net(self.net)
        self.base_dir = Path(base_dir if base_dir is not None else default_base_dir()).resolve()
        self.heap = heap
        self.cluster_name = cluster_name
        self.password_auth = password_auth
        self.version = version
        self.start_timeout = start_timeout if start_timeout is not None else default_start_timeout()
        self.parallel_start = parallel_start
        self.nodes: list[Node] = [
            Node(
                index=i,
                dc=dc,
                address=f"{self.net}.{i + 1}",
                jmx_port=JMX_BASE_PORT + 100 * i + octet,
                home=self.base_dir / "nodes" / dc,
            )
            for i, dc in enumerate(self.datacenters)
        ]
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
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) of the superuser when password auth is on, else None."""
        return SUPERUSER if self.password_auth else None

    @property
    def state_path(self) -> Path:
        return self.base_dir / STATE_FILE

    def node(self, dc: str) -> Node:
        for node in self.nodes:
            if node.dc == dc:
                return node
        raise TestbedError(
            f"unknown datacenter {dc!r}; the testbed has {', '.join(self.datacenters)}"
        )

    def status(self) -> list[NodeStatus]:
        result = []
        for node in self.nodes:
            state = node.state()
            pid = node.live_pid()
            result.append(
                NodeStatus(
                    dc=node.dc,
                    address=node.address,
                    pid=pid,
                    state=state,
                    cql=state == "running" and node.cql_answers(),
                    rss_bytes=processes.rss_bytes(pid) if pid is not None else None,
                )
            )
        return result

    def is_running(self) -> bool:
        """Whether any node of this testbed has a live server process."""
        return any(node.live_pid() is not None for node in self.nodes)

    # --- persisted state ---------------------------------------------------------

    def save_state(self) -> None:
        state = {
            "cluster_name": self.cluster_name,
            "version": self.version,
            "net": self.net,
            "heap": self.heap,
            "password_auth": self.password_auth,
            "owner_pid": self.owner_pid,
            "datacenters": list(self.datacenters),
            "nodes": [
                {
                    "dc": node.dc,
                    "address": node.address,
                    "native_port": node.native_port,
                    "storage_port": node.storage_port,
                    "jmx_port": node.jmx_port,
                    "home": str(node.home),
                    "pid": node.pid,
                }
                for node in self.nodes
            ],
        }
        self.base_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_path)

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
        path = directory / STATE_FILE
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise TestbedError(
                f"no testbed in {directory} (start one with `python -m testbed up`)"
            ) from None
        except ValueError as exc:
            raise TestbedError(f"unreadable testbed state {path}: {exc}") from None
        cluster = cls(
            state["datacenters"],
            net=state["net"],
            base_dir=directory,
            heap=state["heap"],
            cluster_name=state["cluster_name"],
            password_auth=state["password_auth"],
            version=state["version"],
        )
        for node, saved in zip(cluster.nodes, state["nodes"], strict=True):
            node.pid = saved["pid"]
        cluster.owner_pid = state.get("owner_pid")
        return cluster

    # --- lifecycle ---------------------------------------------------------------

    def up(self) -> TestbedCluster:
        """Start every node on fresh data; return once all answer CQL and see each other up."""
        lib = ensure_jars(self.version)
        self._stop_leftovers()
        self._check_ports_free()
        self.owner_pid = os.getpid()
        self._write_files()
        seed, *others = self.nodes
        try:
            self._launch(seed, lib)
            self._wait_ready([seed])
            if self.parallel_start:
                for node in others:
                    self._launch(node, lib)
                self._wait_ready(others)
            else:
                for node in others:
                    self._launch(node, lib)
                    self._wait_ready([node])
            deadline = time.monotonic() + self.start_timeout
            self._wait_for_ring(deadline)
            self._replicate_system_auth(deadline)
            self._wait_for_ring(deadline, probe=True)
        except BaseException:
            self.down()
            raise
        return self

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Wait until every node runs, answers CQL, and every node sees all others up."""
        for node in self.nodes:
            state = node.state()
            if state != "running":
                raise TestbedError(f"node {node.dc} is {state}")
        deadline = time.monotonic() + timeout
        while silent := [node.dc for node in self.nodes if not node.cql_answers()]:
            if time.monotonic() >= deadline:
                raise TestbedError(f"CQL does not answer on {', '.join(silent)}")
            time.sleep(POLL_SECONDS)
        self._wait_for_ring(deadline, probe=True)

    def down(self) -> None:
        """Stop every node: SIGCONT and SIGTERM, then SIGKILL whatever outlives the grace period."""
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
        if self.state_path.parent.is_dir():
            self.save_state()

    def pause(self, dc: str) -> None:
        """Freeze a node with SIGSTOP: it keeps its sockets but answers nothing."""
        node = self.node(dc)
        pid = self._require_pid(node)
        processes.send(pid, signal.SIGSTOP)
        self._wait_until(
            lambda: node.state() == "paused", 10.0, f"node {dc} did not stop on SIGSTOP"
        )

    def resume(self, dc: str) -> None:
        """Let a paused node run again with SIGCONT."""
        node = self.node(dc)
        pid = self._require_pid(node)
        processes.send(pid, signal.SIGCONT)
        self._wait_until(
            lambda: node.state() == "running", 10.0, f"node {dc} did not continue on SIGCONT"
        )

    def kill(self, dc: str) -> None:
        """Crash a node with SIGKILL and wait for the process to be gone."""
        node = self.node(dc)
        pid = self._require_pid(node)
        processes.send(pid, signal.SIGKILL)
        if not processes.wait_for_exit(pid, 30.0):
            raise TestbedError(f"node {dc} (pid {pid}) survived SIGKILL for 30 s")
        self._forget_child(pid)
        node.pid = None
        self.save_state()

    def start(self, dc: str) -> None:
        """Start a stopped node again on its existing data; return once it answers CQL."""
        node = self.node(dc)
        if node.live_pid() is not None:
            raise TestbedError(f"node {dc} is already running (pid {node.pid})")
        if not node.config_path.is_file():
            raise TestbedError(f"node {dc} has no configuration in {node.home}; run `up` first")
        lib = ensure_jars(self.version)
        try:
            self._launch(node, lib)
            self._wait_ready([node])
            self._wait_for_ring(time.monotonic() + self.start_timeout)
        except BaseException:
            if (pid := node.live_pid()) is not None:
                processes.terminate(pid, STOP_GRACE_SECONDS)
                self._forget_child(pid)
            node.pid = None
            self.save_state()
            raise

    def nodetool(self, dc: str, *args: str, timeout: float = 120.0) -> str:
        """Run nodetool against a node's JMX port and return its output."""
        node = self.node(dc)
        self._require_pid(node)
        lib = ensure_jars(self.version)
        logback = self.base_dir / "logback-tools.xml"
        logback.write_text(config_files.tools_logback_xml())
        command = jvm.tool_command(
            lib,
            jvm.NODETOOL_MAIN,
            {
                "logback.configurationFile": logback.as_uri(),
                "cassandra.storagedir": str(node.home),
                "cassandra.logdir": str(node.log_dir),
            },
            ["-h", "127.0.0.1", "-p", str(node.jmx_port), *args],
        )
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_java_env(),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise TestbedError(
                f"nodetool {' '.join(args)} on {dc} did not finish in {timeout:.0f} s"
            ) from None
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-LOG_TAIL_LINES:]
            raise TestbedError(
                f"nodetool {' '.join(args)} on {dc} failed (exit {proc.returncode}):\n"
                + "\n".join(detail)
            )
        return proc.stdout

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

    def _require_pid(self, node: Node) -> int:
        pid = node.live_pid()
        if pid is None:
            raise TestbedError(f"node {node.dc} is not running")
        return pid

    def _forget_child(self, pid: int) -> None:
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait()

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

    def _check_ports_free(self, timeout: float = 5.0) -> None:
        """Fail early, with a hint, when another server holds one of the testbed's ports."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            for host, port in (
                (node.address, node.native_port),
                (node.address, node.storage_port),
                ("127.0.0.1", node.jmx_port),
            ):
                while (error := _bind_error(host, port)) is not None:
                    if time.monotonic() >= deadline:
                        raise TestbedError(
                            f"{host}:{port} (node {node.dc}) is in use: {error}; another "
                            "testbed may be running (`python -m testbed down`, or use another "
                            "--net / CQRS_TESTBED_NET)"
                        )
                    time.sleep(POLL_SECONDS)

    def _write_files(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # Keep the runtime folder out of version control wherever it is created.
        ignore = self.base_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        seed = self.nodes[0].address
        for node in self.nodes:
            if node.home.exists():
                shutil.rmtree(node.home)
            node.conf_dir.mkdir(parents=True)
            node.log_dir.mkdir()
            dirs = node.data_dirs()
            for path in dirs.values():
                path.mkdir()
            layout = config_files.NodeLayout(
                cluster_name=self.cluster_name,
                address=node.address,
                seed=seed,
                token=config_files.initial_token(node.index, len(self.nodes)),
                storage_port=node.storage_port,
                native_port=node.native_port,
                data_dir=dirs["data"],
                commitlog_dir=dirs["commitlog"],
                hints_dir=dirs["hints"],
                saved_caches_dir=dirs["saved_caches"],
                cdc_raw_dir=dirs["cdc_raw"],
                password_auth=self.password_auth,
            )
            node.config_path.write_text(config_files.cassandra_yaml(layout))
            node.rackdc_path.write_text(config_files.rackdc_properties(node.dc))
            node.logback_path.write_text(config_files.logback_xml(node.log_dir))
        self.save_state()

    def _launch(self, node: Node, lib: Path) -> None:
        properties = {
            "cassandra.config": node.config_path.as_uri(),
            "cassandra-rackdc.properties": node.rackdc_path.as_uri(),
            "cassandra.storagedir": str(node.home),
            "cassandra.logdir": str(node.log_dir),
            "logback.configurationFile": node.logback_path.as_uri(),
            "cassandra.jmx.local.port": str(node.jmx_port),
            "cassandra-foreground": "yes",
            # Test-cluster shortcuts: nothing to wait for on a fresh loopback cluster.
            "cassandra.skip_wait_for_gossip_to_settle": "0",
            "cassandra.superuser_setup_delay_ms": "0",
        }
        if node.index == 0:
            # The seed has no one to hear from. The other nodes keep the default ring
            # delay: it bounds their first gossip round with the seed, which on a busy
            # machine can take longer than a second ("Unable to gossip with any peers").
            properties["cassandra.ring_delay_ms"] = "1000"
        command = jvm.server_command(lib, self.heap, properties)
        node._log_offset = node.system_log.stat().st_size if node.system_log.exists() else 0
        with node.stdout_log.open("ab") as out:
            child = subprocess.Popen(
                command,
                cwd=node.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_java_env(),
                start_new_session=True,
            )
        self._children[child.pid] = child
        node.pid = child.pid
        self.save_state()

    def _wait_ready(self, nodes: Sequence[Node]) -> None:
        """Wait until each node has logged READY_LINE and answers CQL."""
        deadline = time.monotonic() + self.start_timeout
        pending = list(nodes)
        while pending:
            for node in list(pending):
                if node.pid is None or not processes.is_alive(node.pid):
                    raise TestbedError(
                        f"node {node.dc} ({node.address}) exited during start; "
                        f"last log lines:\n{node.log_tail()}"
                    )
                if _logged_since(node, READY_LINE) and node.cql_answers():
                    pending.remove(node)
            if not pending:
                return
            if time.monotonic() >= deadline:
                node = pending[0]
                raise TestbedError(
                    f"node {node.dc} ({node.address}) did not answer CQL within "
                    f"{self.start_timeout:.0f} s; last log lines:\n{node.log_tail()}"
                )
            time.sleep(POLL_SECONDS)

    def _wait_for_ring(self, deadline: float, probe: bool = False) -> None:
        """Wait until the running nodes agree on the ring.

        Each must see every other NORMAL, in its DC, on its current generation (so a
        restart is known) and on one schema version. With `probe`, and when every node
        runs, each must also coordinate a read at consistency ALL over system_auth,
        which has a replica on every node: that fails while any node's failure
        detector still holds a peer down (e.g. just after a pause ends).
        """
        running = [node for node in self.nodes if node.state() == "running"]
        probe = probe and len(running) == len(self.nodes)
        problem = "no answer yet"
        while True:
            try:
                with ExitStack() as stack:
                    sessions = {
                        node.address: stack.enter_context(self._session(node)) for node in running
                    }
                    views = {
                        address: _gossip_view(session) for address, session in sessions.items()
                    }
                    problem = _ring_problem(running, views)
                    if problem is None and probe:
                        for node in running:
                            try:
                                _read_at_all(sessions[node.address])
                            except Exception as exc:
                                name = type(exc).__name__
                                problem = f"{node.dc} does not yet see every node up ({name})"
                                break
                if problem is None:
                    return
            except Exception as exc:  # the driver's errors have no common base
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise TestbedError(f"the nodes did not agree on the ring in time: {problem}")
            time.sleep(POLL_SECONDS * 2)

    def _replicate_system_auth(self, deadline: float) -> None:
        """Give system_auth one replica in every datacenter.

        Logins then survive a stopped node, and a read of it at ALL tells whether a
        coordinator sees every node up. With password auth, a repair copies the
        default superuser, created before the change, to the new replicas.
        """
        replication = ", ".join(f"'{dc}': 1" for dc in self.datacenters)
        statement = (
            "ALTER KEYSPACE system_auth WITH replication = "
            f"{{'class': 'NetworkTopologyStrategy', {replication}}}"
        )
        while True:
            try:
                with self._session(self.nodes[0]) as session:
                    session.execute(statement)
                break
            except Exception as exc:  # e.g. the default superuser is not created yet
                if time.monotonic() >= deadline:
                    raise TestbedError(f"cannot replicate system_auth: {exc}") from exc
                time.sleep(POLL_SECONDS * 2)
        if self.password_auth:
            self.nodetool(self.write_datacenter, "repair", "-full", "system_auth")

    @contextmanager
    def _session(self, node: Node) -> Iterator[Session]:
        """A driver session that talks to `node` only."""
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import WhiteListRoundRobinPolicy

        auth = PlainTextAuthProvider(*SUPERUSER) if self.password_auth else None
        profile = ExecutionProfile(
            load_balancing_policy=WhiteListRoundRobinPolicy([node.address]), request_timeout=20.0
        )
        cluster = Cluster(
            contact_points=[node.address],
            port=node.native_port,
            protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth,
            connect_timeout=10,
            control_connection_timeout=10,
            schema_metadata_enabled=False,
            token_metadata_enabled=False,
        )
        try:
            yield cluster.connect(wait_for_all_pools=True)
        finally:
            cluster.shutdown()

    @staticmethod
    def _wait_until(check: Any, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() >= deadline:
                raise TestbedError(message)
            time.sleep(0.05)


def _bind_error(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None if it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _java_env() -> dict[str, str]:
    return dict(os.environ, JAVA_HOME=str(jvm.java_executable().parent.parent))


def _logged_since(node: Node, line: str) -> bool:
    """Whether `line` appears in the node's system.log after its last launch."""
    try:
        with node.system_log.open("rb") as log:
            log.seek(node._log_offset)
            return line.encode() in log.read()
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class GossipView:
    """What one node's gossip says about one endpoint."""

    dc: str | None
    generation: int | None
    status: str
    schema: str | None


def _gossip_view(session: Session) -> dict[str, GossipView]:
    """The gossip state of every endpoint known to the node behind `session`, by address."""
    rows = session.execute(
        'SELECT address, dc, generation, status_with_port, "schema" FROM system_views.gossip_info'
    )
    return {
        str(row.address): GossipView(row.dc, row.generation, row.status_with_port or "", row.schema)
        for row in rows
    }


def _read_at_all(session: Session) -> None:
    """Coordinate a read at ALL over a keyspace with a replica on every node."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    session.execute(
        SimpleStatement(
            "SELECT role FROM system_auth.roles LIMIT 1", consistency_level=ConsistencyLevel.ALL
        )
    )


def _ring_problem(nodes: Sequence[Node], views: dict[str, dict[str, GossipView]]) -> str | None:
    """Why the gossip views of `nodes` do not yet agree, or None when they do."""
    own = {node.address: views[node.address].get(node.address) for node in nodes}
    for node in nodes:
        view = views[node.address]
        for other in nodes:
            seen = view.get(other.address)
            if seen is None:
                return f"{node.dc} does not know {other.dc} ({other.address})"
            if seen.dc != other.dc:
                return f"{node.dc} places {other.address} in {seen.dc}, not {other.dc}"
            if not seen.status.startswith("NORMAL"):
                return f"{node.dc} sees {other.dc} as {seen.status or 'no status'}"
            itself = own[other.address]
            if itself is None or seen.generation != itself.generation:
                return f"{node.dc} has not yet seen {other.dc} restart"
            if seen.schema != view[node.address].schema:
                return f"{node.dc} and {other.dc} disagree on the schema version"
    return None
