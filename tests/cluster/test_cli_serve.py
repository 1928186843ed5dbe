"""`cqrs-exporter serve` as a real process: it listens, answers, and ends on SIGTERM in time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import free_port, serve_command, serve_until_exit

pytestmark = pytest.mark.cluster


def wait_http(url: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serve_ends_within_ten_seconds_of_sigterm(
    testbed_config: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(testbed_config))
    port = free_port()
    process = subprocess.Popen(
        serve_command(config, f"127.0.0.1:{port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/health/live", timeout=60) == 200
        # Let it connect and run probes, so shutdown has real work to undo.
        deadline = time.monotonic() + 60
        while True:
            try:
                if wait_http(f"http://127.0.0.1:{port}/health/ready", timeout=5) == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = process.wait(timeout=10)
        assert time.monotonic() - started < 10
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr
    assert "stopping on signal" in stderr


def test_serve_reports_a_busy_port_without_traceback(
    testbed_config: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(testbed_config))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            serve_command(config, f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serve_names_a_datacenter_the_cluster_does_not_have_and_exits_2(
    make_config: Any, tmp_path: Path
) -> None:
    config = make_config()
    config["datacenters"]["read"] = ["ca-central", "eu-west1"]
    # Consistent as a config (a replication factor per configured datacenter): only the
    # cluster can say that eu-west1 is not one of its datacenters.
    factors = config["monitoring"]["replication_factor"]
    config["monitoring"]["replication_factor"] = {
        ("eu-west1" if dc == "eu-west" else dc): n for dc, n in factors.items()
    }
    result = serve_until_exit(config, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "datacenters: 'eu-west1' is not a datacenter of this cluster, whose datacenters are "
        "ca-central, eu-west, us-east"
    ) in result.stderr
