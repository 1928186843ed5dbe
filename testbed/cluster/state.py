"""The state file: what any process needs to find, signal or stop a testbed another one started."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from testbed.cluster.node import Node
from testbed.errors import TestbedError

STATE_FILE = "testbed.json"


def save(base_dir: Path, settings: dict[str, Any], nodes: Sequence[Node]) -> None:
    """Write the cluster's settings and each node's addresses, ports and PID, atomically."""
    state = {
        **settings,
        "nodes": [
            {
                "name": node.name,
                "dc": node.dc,
                "address": node.address,
                "broadcast_address": node.broadcast_address,
                "native_port": node.native_port,
                "storage_port": node.storage_port,
                "jmx_port": node.jmx_port,
                "home": str(node.home),
                "pid": node.pid,
            }
            for node in nodes
        ],
    }
    base_dir.mkdir(parents=True, exist_ok=True)
    path = base_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def read(directory: Path) -> dict[str, Any]:
    """The state saved in `directory`; a TestbedError when there is none or it is unreadable."""
    path = directory / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise TestbedError(
            f"no testbed in {directory} (start one with `python -m testbed up`)"
        ) from None
    except ValueError as exc:
        raise TestbedError(f"unreadable testbed state {path}: {exc}") from None
    return state
