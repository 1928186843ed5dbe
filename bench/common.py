"""What every benchmark shares: where its figures are written, and a schema that is in place."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from exporter.config import Config
from exporter.connection import CassandraConnection
from exporter.schema import ensure_schema

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
