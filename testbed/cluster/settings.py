"""What a testbed is made of by default, where it lives, and the checks on what it is given."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path

from testbed.errors import TestbedError

DEFAULT_DATACENTERS: tuple[str, ...] = ("us-east", "ca-central", "eu-west")
CLUSTER_NAME = "cqrs-testbed"
DEFAULT_HEAP = "512M"
DEFAULT_START_TIMEOUT = 180.0
STOP_GRACE_SECONDS = 30.0
LOG_TAIL_LINES = 20
POLL_SECONDS = 0.2
SUPERUSER = ("cassandra", "cassandra")
MAX_NODES_PER_DC = 5
# A node's replication proxy listens on <net>.<PROXY_OFFSET + index>.
PROXY_OFFSET = 101

_DC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_HEAP = re.compile(r"^[0-9]+[MmGg]$")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_net() -> str:
    return os.environ.get("CQRS_TESTBED_NET", "127.0.0")


def default_start_timeout() -> float:
    """Seconds each start phase may take: $CQRS_TESTBED_START_TIMEOUT or 180."""
    return float(os.environ.get("CQRS_TESTBED_START_TIMEOUT", DEFAULT_START_TIMEOUT))


def default_base_dir() -> Path:
    override = os.environ.get("CQRS_TESTBED_DIR")
    return Path(override).expanduser() if override else repo_root() / ".testbed"


def check_net(net: str) -> int:
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


def check_datacenters(datacenters: Sequence[str]) -> tuple[str, ...]:
    """The datacenter names as a tuple, once each is known to be a usable, unique name."""
    names = tuple(datacenters)
    if not names:
        raise TestbedError("a testbed needs at least one datacenter")
    for dc in names:
        if not _DC_NAME.match(dc):
            raise TestbedError(f"datacenter name {dc!r} must be letters, digits, '-' or '_'")
    if len(set(names)) != len(names):
        raise TestbedError(f"datacenter names repeat: {', '.join(names)}")
    return names


def check_heap(heap: str) -> str:
    if not _HEAP.match(heap):
        raise TestbedError(f"heap {heap!r} must look like 512M or 1G")
    return heap


def check_nodes_per_dc(count: int, datacenters: Sequence[str]) -> int:
    if not 1 <= count <= MAX_NODES_PER_DC:
        raise TestbedError(f"nodes per datacenter must be 1 to {MAX_NODES_PER_DC}, not {count}")
    if count * len(datacenters) > PROXY_OFFSET - 1:
        raise TestbedError(f"{count * len(datacenters)} nodes do not fit the address plan")
    return count
