"""The OpenAPI document: it names every route the app serves, and schemathesis finds a live
exporter conforming to it (the healthy-cluster run lives in test_health_cluster.py)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from exporter.app import create_app
from exporter.config import parse_config
from exporter.service import Exporter
from tests.support import poll_until, serve_exporter

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = REPO / "docs" / "openapi.yaml"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# A DOWN verdict and an unready exporter answer 503 by design; only that 5xx is accepted.
ALLOW_503 = """
[checks.not_a_server_error]
expected-statuses = ["1xx", "2xx", "3xx", "4xx", "503"]
"""


async def run_schemathesis(
    url: str, *, max_examples: int, allow_503: bool = False, extra: Sequence[str] = ()
) -> tuple[int, str]:
    """Run the schemathesis CLI against `url` with every check; return its code and output."""
    with tempfile.TemporaryDirectory() as work:
        command = [str(SCHEMATHESIS)]
        if allow_503:
            settings = Path(work) / "schemathesis.toml"
            settings.write_text(ALLOW_503)
            command += ["--config-file", str(settings)]
        command += [
            "run", str(DOCUMENT), "--url", url, "--checks", "all",
            "--max-examples", str(max_examples), "--workers", "1",
            "--request-timeout", "10", "--generation-database", "none", "--no-color", *extra,
        ]
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=work,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    return int(process.returncode or 0), output.decode(errors="replace")


def test_the_document_covers_every_route_the_app_serves() -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    assert str(document["openapi"]).startswith("3.")
    config = parse_config(
        {"cluster": {"contact_points": ["127.0.0.1"]}, "datacenters": {"write": "us-east"}}
    )
    app = create_app(Exporter(config))
    served = {
        route.resource.canonical
        for route in app.router.routes()
        if route.method == "GET" and route.resource is not None
    }
    assert served == set(document["paths"])
    for path, operations in document["paths"].items():
        assert set(operations) == {"get"}, path
        assert "200" in operations["get"]["responses"], path


async def test_schemathesis_finds_an_exporter_without_cassandra_conforming() -> None:
    config: dict[str, Any] = {
        "cluster": {"contact_points": ["127.0.0.1"], "port": 1, "connect_timeout": "1s"},
        "datacenters": {"write": "us-east", "read": ["ca-central"]},
        "probes": {
            "startup_grace": "3s",  # Cassandra never answers here
            "reachability": {"interval": "1s", "timeout": "500ms"},
            "replication": {"enabled": False},
            "latency": {"enabled": False},
        },
        "health": {"groups": {"reads-ca-central": {"checks": ["replication_lag/ca-central"]}}},
    }
    async with serve_exporter(config) as running:
        # DOWN with details: the write path has failed three readings.
        async def down() -> bool:
            return (await running.get("/health"))[0] == 503

        await poll_until(down, timeout=30, message="/health DOWN")
        code, output = await run_schemathesis(running.url, max_examples=10, allow_503=True)
    assert code == 0, output[-6000:]
