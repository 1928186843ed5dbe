"""A real `cqrs-exporter serve` process on the testbed, for benchmarks that measure it from
outside: its config written to a file, its log kept, and what its endpoints and /proc say."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.quiet import cpu_seconds, rss_bytes
from testbed import TestbedCluster
from testbed.processes import stop_child
from tests.support import free_port, serve_command

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""A scrape's samples by name: (labels, value) pairs."""


def base_config(cluster: TestbedCluster) -> dict[str, Any]:
    return {
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {"write": cluster.write_datacenter, "read": list(cluster.read_datacenters)},
        "monitoring": {"create_schema": True, "replication_factor": 1},
        "server": {"log_level": "INFO"},
    }


class Served:
    """One `cqrs-exporter serve` process and what its scrapes and /proc say."""

    def __init__(self, name: str, config: dict[str, Any], directory: Path) -> None:
        self.name = name
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.address = f"127.0.0.1:{free_port()}"
        self.log = (directory / f"{name}.log").open("wb")
        self.process = subprocess.Popen(
            serve_command(path, self.address), stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.log_path = directory / f"{name}.log"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def rss_mb(self) -> float:
        return rss_bytes(self.process.pid) / 2**20

    def scrape(self) -> tuple[float, int, Samples]:
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=10) as response:
            body = response.read()
        took = time.perf_counter() - started
        samples: Samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return took, len(body), samples

    def get_json(self, path: str) -> Any:
        """The JSON body of GET `path`, whatever its status (health endpoints answer 503)."""
        try:
            with urllib.request.urlopen(f"http://{self.address}{path}", timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Return once /health/ready says UP; exit with the log's tail if it dies or is late."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} was not ready within {timeout:g} s")
            time.sleep(0.5)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/health/ready", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        stop_child(self.process)
        self.log.close()


def by_dc(samples: Samples, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in samples.get(name, []):
        dc = labels.get("cassandra_datacenter", "")
        out[dc] = out.get(dc, 0.0) + value
    return out


