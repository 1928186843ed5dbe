"""nodetool against one node's JMX port, run from the same jars as the server."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from testbed import config_files, jvm
from testbed.cluster.node import Node
from testbed.cluster.settings import LOG_TAIL_LINES
from testbed.errors import TestbedError


def run_nodetool(
    node: Node, lib: Path, base_dir: Path, args: Sequence[str], timeout: float
) -> str:
    """Run nodetool with `args` against `node` and return its output."""
    logback = base_dir / "logback-tools.xml"
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
            env=jvm.java_env(),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise TestbedError(
            f"nodetool {' '.join(args)} on {node.name} did not finish in {timeout:.0f} s"
        ) from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-LOG_TAIL_LINES:]
        raise TestbedError(
            f"nodetool {' '.join(args)} on {node.name} failed (exit {proc.returncode}):\n"
            + "\n".join(detail)
        )
    return proc.stdout
