"""One node of the testbed: its folders, files, ports and server process."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from testbed import jvm, processes
from testbed.cluster.ports import NATIVE_PORT, STORAGE_PORT
from testbed.cluster.settings import LOG_TAIL_LINES
from testbed.cql_probe import cql_answers

if TYPE_CHECKING:
    from testbed.cluster.security import ClientTls

MEMORY_DIR = Path("/dev/shm")
"""Where the commit logs go when it is a writable tmpfs with room (see Node.commitlog_dir)."""
MEMORY_ROOM = 2 << 30
"""Free bytes it must have: six nodes' commit logs (128 MiB each at most) and to spare.
A container's default /dev/shm of 64 MiB has not, and the commit logs stay on disk."""


def memory_has_room() -> bool:
    """Whether commit logs may go to MEMORY_DIR."""
    try:
        stats = os.statvfs(MEMORY_DIR)
    except OSError:
        return False
    room = stats.f_bavail * stats.f_frsize
    return os.access(MEMORY_DIR, os.W_OK | os.X_OK) and room >= MEMORY_ROOM


@dataclass(frozen=True)
class NodeStatus:
    """One node as seen at one moment."""

    name: str
    dc: str
    address: str
    pid: int | None
    state: str  # "running", "paused" or "stopped"
    cql: bool  # whether the CQL port answered a request
    rss_bytes: int | None


class Node:
    """One Cassandra server of the testbed: its files, ports and process."""

    def __init__(
        self,
        index: int,
        dc: str,
        address: str,
        jmx_port: int,
        home: Path,
        *,
        ordinal: int = 1,
        name: str | None = None,
        broadcast_address: str | None = None,
    ) -> None:
        self.index = index
        self.dc = dc
        self.ordinal = ordinal  # 1, 2, ... within its datacenter
        self.name = name or dc
        self.address = address  # listen and CQL address
        # What other nodes connect to: the replication proxy's address when there is one.
        self.broadcast_address = broadcast_address or address
        self.jmx_port = jmx_port
        self.home = home
        self.native_port = NATIVE_PORT
        self.storage_port = STORAGE_PORT
        self.pid: int | None = None
        # How a client speaks TLS to this node, when its CQL port needs it (set by the cluster).
        self.client_tls: ClientTls | None = None
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"Node(name={self.name!r}, address={self.address!r}, pid={self.pid})"

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

    @property
    def commitlog_dir(self) -> Path:
        """The commit log's folder: in memory (tmpfs) where the machine has one.

        The testbed acknowledges a write only once its commit log is synced (so that a
        SIGKILLed node keeps it). On disk every sync would add the disk's fsync time to the
        write, 100 ms at p99 on a small VM, which no production node on good disks waits;
        on a tmpfs the sync costs nothing and survives a killed process, as a disk would.
        """
        memory = self._memory_folder()
        # Once chosen (the folder exists), kept until released, whatever room is left.
        if memory.is_dir() or memory_has_room():
            return memory / "commitlog"
        return self.home / "commitlog"

    def _memory_folder(self) -> Path:
        key = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:16]
        return MEMORY_DIR / f"cqrs-testbed-{key}"

    def release_commitlog(self) -> None:
        """Free a commit log kept in memory (the next start of the testbed wipes it anyway)."""
        shutil.rmtree(self._memory_folder(), ignore_errors=True)

    def data_dirs(self) -> dict[str, Path]:
        dirs = {name: self.home / name for name in ("data", "hints", "saved_caches", "cdc_raw")}
        return {**dirs, "commitlog": self.commitlog_dir}

    def endpoints(self) -> list[tuple[str, str, int]]:
        """(node name, host, port) of every socket the server listens on."""
        return [
            (self.name, self.address, self.native_port),
            (self.name, self.address, self.storage_port),
            (self.name, "127.0.0.1", self.jmx_port),
        ]

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
        context = self.client_tls.context() if self.client_tls is not None else None
        return cql_answers(self.address, self.native_port, timeout, ssl_context=context)

    def mark_launch(self) -> None:
        """Remember where system.log ends, so that only the coming launch's lines count."""
        self._log_offset = self.system_log.stat().st_size if self.system_log.exists() else 0

    def logged_since_launch(self, line: str) -> bool:
        """Whether `line` appears in the node's system.log after its last launch."""
        try:
            with self.system_log.open("rb") as log:
                log.seek(self._log_offset)
                return line.encode() in log.read()
        except FileNotFoundError:
            return False

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
