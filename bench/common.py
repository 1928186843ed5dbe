"""What every benchmark shares: a testbed to run on, a schema in place, where figures go.

A benchmark uses the testbed running in $CQRS_TESTBED_DIR (started with
`python -m testbed up`) if there is one, otherwise it starts its own and stops it at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from exporter.config import Config
from exporter.connection import CassandraConnection
from exporter.schema import ensure_schema
from testbed import TestbedCluster
from testbed.cluster import default_base_dir

RESULTS = Path(__file__).resolve().parent / "results"


def save_results(name: str, figures: Any) -> Path:
    """Write `figures` to bench/results/<name>.json and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return path


async def ensure_schema_retrying(
    config: Config, connection: CassandraConnection, attempts: int = 30
) -> None:
    """Create the monitoring schema, retrying while a node just back from a fault settles."""
    for attempt in range(attempts):
        try:
            await ensure_schema(config, connection)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)


@contextmanager
def testbed() -> Iterator[TestbedCluster]:
    """The running testbed, or a fresh one for the length of the benchmark."""
    running = TestbedCluster.running()
    if running is not None:
        yield running
        return
    cluster = TestbedCluster(base_dir=default_base_dir() / "bench")
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


def quiet_logging() -> None:
    """Warnings only, and none of the driver's or scheduler's noise when nodes are paused or
    runs are cancelled at shutdown: a benchmark prints its own figures."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    logging.getLogger("exporter.scheduler").setLevel(logging.ERROR)
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
