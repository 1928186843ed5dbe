"""Replication through Toxiproxy: the faults that slow or cut one datacenter's replication
while its clients still reach it.

Each node's `broadcast_address` is a Toxiproxy listener in front of its `listen_address`
(`listen_on_broadcast_address: false`). Nodes of another datacenter connect to that
broadcast address, so everything they send the node — mutations, hints, gossip, read
requests — passes the proxy; nodes of the same datacenter talk over the listen address
(`prefer_local=true`) and CQL clients connect to the node directly. A latency toxic on the
upstream stream of a node's proxy is one-way latency into that node; a disabled proxy is a
partition: connections into the node from other datacenters are refused, so nothing it
sends them is answered either.

The proxies are declared in a JSON file the server loads at start, so a restarted server
has them again; the faults are the server's state, which every process reads through its
HTTP API.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed import processes
from testbed.cluster.node import Node
from testbed.cluster.ports import bind_error
from testbed.cluster.settings import POLL_SECONDS, repo_root
from testbed.errors import TestbedError

log = logging.getLogger("testbed")

API_BASE_PORT = 8474
SERVER = "toxiproxy-server"
DELAY_TOXIC = "replication-delay"
START_TIMEOUT = 15.0


def api_port(net_octet: int) -> int:
    """The Toxiproxy API port of the testbed on net 127.0.<octet>."""
    return API_BASE_PORT + net_octet


def find_server() -> Path:
    """toxiproxy-server: $CQRS_TOXIPROXY_SERVER, the set-up's tools folder, or PATH."""
    override = os.environ.get("CQRS_TOXIPROXY_SERVER")
    tools = Path(os.environ.get("CQRS_TOOLS_DIR", repo_root() / ".tools")) / "bin" / SERVER
    for candidate in (Path(override) if override else None, tools):
        if candidate is not None and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(SERVER)
    if found:
        return Path(found)
    raise TestbedError(
        f"{SERVER} not found (looked in $CQRS_TOXIPROXY_SERVER, {tools.parent} and PATH); "
        "`bash scripts/setup.sh --for run` builds it"
    )


@dataclass(frozen=True)
class Fault:
    """A fault in force on one node's replication proxy."""

    node: str  # the node's name, e.g. eu-west or eu-west-2
    dc: str
    kind: str  # "delay" or "partition"
    latency_ms: int = 0
    jitter_ms: int = 0

    def describe(self) -> str:
        if self.kind == "partition":
            return f"{self.node}: replication partitioned"
        jitter = f" ± {self.jitter_ms} ms" if self.jitter_ms else ""
        return f"{self.node}: replication delayed {self.latency_ms} ms{jitter}"


class ReplicationProxies:
    """The Toxiproxy server of one testbed and the proxy in front of each node."""

    def __init__(self, nodes: Sequence[Node], base_dir: Path, net_octet: int) -> None:
        self.nodes = list(nodes)
        self.base_dir = base_dir
        self.port = api_port(net_octet)
        self.pid: int | None = None
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.base_dir / "toxiproxy.json"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "toxiproxy.log"

    # --- the server ----------------------------------------------------------------

    def live_pid(self) -> int | None:
        pid = self.pid
        alive = pid is not None and processes.is_alive(pid)
        return pid if alive and SERVER in " ".join(processes.cmdline(pid or 0)) else None

    def endpoints(self) -> list[tuple[str, str, int]]:
        """(name, host, port) of every socket the server listens on."""
        return [("toxiproxy", "127.0.0.1", self.port)] + [
            (f"{node.name} proxy", node.broadcast_address, node.storage_port)
            for node in self.nodes
        ]

    def start(self) -> None:
        """Start the server with one enabled proxy per node, and wait until it answers."""
        server = find_server()
        declared = [
            {
                "name": node.name,
                "listen": f"{node.broadcast_address}:{node.storage_port}",
                "upstream": f"{node.address}:{node.storage_port}",
                "enabled": True,
            }
            for node in self.nodes
        ]
        self.config_path.write_text(json.dumps(declared, indent=2) + "\n")
        with self.log_path.open("ab") as out:
            self._child = subprocess.Popen(
                [str(server), "-host", "127.0.0.1", "-port", str(self.port),
                 "-config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._child.pid
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not processes.is_alive(self.pid):
                tail = self.log_path.read_text(errors="replace").splitlines()[-10:]
                raise TestbedError(f"{SERVER} exited at start:\n" + "\n".join(tail))
            try:
                names = {proxy["name"] for proxy in self._get("/proxies").values()}
                if names >= {node.name for node in self.nodes}:
                    return
            except TestbedError:
                pass
            if time.monotonic() >= deadline:
                raise TestbedError(
                    f"{SERVER} did not answer on {self.api} in {START_TIMEOUT:.0f} s"
                )
            time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        pid = self.live_pid()
        if pid is not None:
            processes.terminate(pid, 10.0)
        if self._child is not None:
            self._child.wait()
            self._child = None
        self.pid = None

    def free_error(self) -> str | None:
        """Why the server's sockets cannot be listened on, or None."""
        for name, host, port in self.endpoints():
            if (error := bind_error(host, port)) is not None:
                return f"{host}:{port} ({name}) is in use: {error}"
        return None

    # --- faults --------------------------------------------------------------------

    def delay(self, nodes: Sequence[Node], latency_ms: int, jitter_ms: int = 0) -> None:
        """One-way latency on everything other datacenters send `nodes`."""
        if latency_ms < 0 or jitter_ms < 0:
            raise TestbedError("delay and jitter are milliseconds, zero or more")
        attributes = {"latency": latency_ms, "jitter": jitter_ms}
        for node in nodes:
            self._require_running()
            toxics = {toxic["name"] for toxic in self._get(f"/proxies/{node.name}/toxics")}
            if DELAY_TOXIC in toxics:
                self._post(f"/proxies/{node.name}/toxics/{DELAY_TOXIC}",
                           {"attributes": attributes})
            else:
                self._post(f"/proxies/{node.name}/toxics", {
                    "name": DELAY_TOXIC, "type": "latency", "stream": "upstream",
                    "toxicity": 1.0, "attributes": attributes,
                })

    def partition(self, nodes: Sequence[Node]) -> None:
        """Refuse every connection other datacenters make to `nodes`, and drop the open ones."""
        for node in nodes:
            self._require_running()
            self._post(f"/proxies/{node.name}", {"enabled": False})

    def heal(self, nodes: Sequence[Node]) -> None:
        """Remove every fault from the proxies of `nodes`."""
        for node in nodes:
            self._require_running()
            for toxic in self._get(f"/proxies/{node.name}/toxics"):
                self._request("DELETE", f"/proxies/{node.name}/toxics/{toxic['name']}")
            self._post(f"/proxies/{node.name}", {"enabled": True})

    def faults(self) -> list[Fault]:
        """The faults in force, node by node (none when the server is not running)."""
        if self.live_pid() is None:
            return []
        proxies = self._get("/proxies")
        found = []
        for node in self.nodes:
            proxy = proxies.get(node.name)
            if proxy is None:
                continue
            if not proxy.get("enabled", True):
                found.append(Fault(node.name, node.dc, "partition"))
            for toxic in proxy.get("toxics", []):
                if toxic.get("type") == "latency":
                    attributes = toxic.get("attributes", {})
                    found.append(Fault(
                        node.name, node.dc, "delay",
                        int(attributes.get("latency", 0)), int(attributes.get("jitter", 0)),
                    ))
        return found

    # --- the API ---------------------------------------------------------------------

    def _require_running(self) -> None:
        if self.live_pid() is None:
            raise TestbedError(
                f"{SERVER} of this testbed is not running; start the testbed with `up`"
            )

    def _get(self, path: str) -> Any:
        return self._request("GET", path)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api + path, data=data, method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=5.0) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise TestbedError(f"{SERVER} refused {method} {path}: {exc.code} {detail}") from None
        except OSError as exc:
            raise TestbedError(f"{SERVER} at {self.api} did not answer: {exc}") from None
        return json.loads(text) if text.strip() else None
