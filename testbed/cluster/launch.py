"""Starting a node's server process and waiting until it answers CQL."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from testbed import jvm, processes
from testbed.cluster.node import Node
from testbed.cluster.settings import POLL_SECONDS
from testbed.errors import TestbedError

log = logging.getLogger("testbed")

READY_LINE = "Starting listening for CQL clients"


def launch(node: Node, lib: Path, heap: str) -> subprocess.Popen[bytes]:
    """Start the node's server in a session of its own, its output appended to stdout.log."""
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
    command = jvm.server_command(lib, heap, properties)
    node.mark_launch()
    with node.stdout_log.open("ab") as out:
        child = subprocess.Popen(
            command,
            cwd=node.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=jvm.java_env(),
            start_new_session=True,
        )
    node.pid = child.pid
    return child


def wait_ready(nodes: Sequence[Node], timeout: float) -> None:
    """Wait until each node has logged READY_LINE and answers CQL."""
    began = time.monotonic()
    deadline = began + timeout
    pending = list(nodes)
    while pending:
        for node in list(pending):
            if node.pid is None or not processes.is_alive(node.pid):
                raise TestbedError(
                    f"node {node.name} ({node.address}) exited during start; "
                    f"last log lines:\n{node.log_tail()}"
                )
            if node.logged_since_launch(READY_LINE) and node.cql_answers():
                pending.remove(node)
                log.info("%s (%s) answers CQL after %.0f s", node.name, node.address,
                         time.monotonic() - began)
        if not pending:
            return
        if time.monotonic() >= deadline:
            node = pending[0]
            raise TestbedError(
                f"node {node.name} ({node.address}) did not answer CQL within "
                f"{timeout:.0f} s; last log lines:\n{node.log_tail()}"
            )
        time.sleep(POLL_SECONDS)
