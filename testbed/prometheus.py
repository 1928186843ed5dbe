"""A real Prometheus (Debian's `prometheus` package) for the demo and the tests.

It scrapes the given targets with the given rule files, keeps its data in a folder of its
own, and is stopped by the PID it was started with.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.errors import TestbedError
from testbed.processes import die_with_parent, stop_child

BINARY = "/usr/bin/prometheus"
READY_TIMEOUT = 60.0


@dataclass
class PrometheusServer:
    """One Prometheus process: `start()` waits until it is ready, `stop()` ends it."""

    directory: Path
    targets: list[str]
    port: int
    rule_files: list[Path] = field(default_factory=list)
    scrape_interval: str = "5s"
    evaluation_interval: str = "5s"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": "cqrs-exporter", "static_configs": [{"targets": self.targets}]}
            ],
        }

    def start(self) -> PrometheusServer:
        """Start it and wait until it is ready."""
        self.spawn()
        self.wait_ready()
        return self

    def spawn(self) -> None:
        """Start the process (quick; it dies with the thread that calls this)."""
        binary = shutil.which("prometheus") or BINARY
        if not Path(binary).exists():
            raise TestbedError(
                "prometheus is not installed: `apt-get install prometheus` (Debian's package)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        log = (self.directory / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        log.close()

    def wait_ready(self) -> None:
        """Block until it answers `/-/ready`; stop it and raise if it exits or takes too long."""
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready():
            if self.process.poll() is not None:
                raise TestbedError(f"prometheus exited: see {self.directory / 'prometheus.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise TestbedError(f"prometheus not ready within {READY_TIMEOUT:g} s")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_child(self.process)
