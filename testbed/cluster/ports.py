"""The ports a node listens on, and the check that nothing else holds them before a start."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from testbed.cluster.settings import POLL_SECONDS
from testbed.errors import TestbedError

STORAGE_PORT = 7000
NATIVE_PORT = 9042
JMX_BASE_PORT = 7100


def jmx_port(index: int, net_octet: int) -> int:
    """The JMX port of the node at `index`: every node shares 127.0.0.1 for JMX, so the
    port tells the nodes, and the testbeds on different nets, apart."""
    return JMX_BASE_PORT + 100 * index + net_octet


def bind_error(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None if it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def wait_until_free(endpoints: Iterable[tuple[str, str, int]], timeout: float = 5.0) -> None:
    """Fail early, with a hint, when another server holds one of the (dc, host, port)."""
    deadline = time.monotonic() + timeout
    for dc, host, port in endpoints:
        while (error := bind_error(host, port)) is not None:
            if time.monotonic() >= deadline:
                raise TestbedError(
                    f"{host}:{port} (node {dc}) is in use: {error}; another "
                    "testbed may be running (`python -m testbed down`, or use another "
                    "--net / CQRS_TESTBED_NET)"
                )
            time.sleep(POLL_SECONDS)
