"""A planted secret appears nowhere: not in `check-config`, `schema` or `grants` output, not in
the logs of `serve` at DEBUG in text or JSON, not in any HTTP body, not in a traceback.

`serve` runs a few seconds against a cluster that is not there (nothing listens at the
contact point), so the driver's failures, the probes' retries and their logs all happen.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

SECRET = "planted-Secret-7Zq9xK4w"
NOWHERE = os.environ.get("CQRS_TESTBED_NET", "127.0.0") + ".250"
"""A loopback address where no node listens."""
PATHS = ("/health", "/health?verbose", "/health/live", "/health/ready", "/", "/metrics")


def write_config(tmp_path: Path, password: dict[str, str], fmt: str, port: int) -> Path:
    data: dict[str, Any] = {
        "cluster": {
            "contact_points": [NOWHERE],
            "port": 19042,
            "auth": {"username": "cqrs_exporter", "password": password},
            "connect_timeout": "1s",
            "reconnect_max_delay": "1s",
        },
        "datacenters": {"write": "us-east", "read": ["eu-west"]},
        "probes": {"startup_grace": "1s"},
        "server": {"listen": f"127.0.0.1:{port}", "log_level": "DEBUG", "log_format": fmt},
    }
    path = tmp_path / f"config-{fmt}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")} | extra


def run(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode("utf-8", "replace")


def serve_and_fetch(config: Path, port: int, env: dict[str, str]) -> tuple[str, list[str]]:
    """Serve for a few seconds; (everything it wrote, every body it answered)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    bodies: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if fetch(base + "/health/live")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, "serve ended early"
            assert time.monotonic() < deadline, "serve never answered /health/live"
            time.sleep(0.2)
        time.sleep(3)  # the probes try the absent cluster, the driver retries
        bodies = [fetch(base + path)[1] for path in PATHS]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    return output, bodies


@pytest.mark.parametrize("source", ["env", "file"])
def test_check_config_schema_and_grants_print_no_secret(source: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    password = {"env": "CQRS_PLANTED"} if source == "env" else {"file": str(secret_file)}
    config = write_config(tmp_path, password, "text", free_port())
    env = environment(CQRS_PLANTED=SECRET)
    for args in (
        ("check-config", str(config)),
        ("check-config", "--resolve-secrets", str(config)),
        ("schema", "--config", str(config)),
        ("grants", "--config", str(config)),
    ):
        assert SECRET not in run(*args, env=env), args


@pytest.mark.parametrize(("source", "fmt"), [("env", "text"), ("file", "json")])
def test_serve_logs_and_bodies_hold_no_secret(source: str, fmt: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    password = {"env": "CQRS_PLANTED"} if source == "env" else {"file": str(secret_file)}
    port = free_port()
    config = write_config(tmp_path, password, fmt, port)
    output, bodies = serve_and_fetch(config, port, environment(CQRS_PLANTED=SECRET))
    assert "DEBUG" in output, "not logged at DEBUG"
    assert SECRET not in output
    assert len(bodies) == len(PATHS) and all(bodies)
    for path, body in zip(PATHS, bodies, strict=True):
        assert SECRET not in body, path
    # Auth over a connection without TLS: said once, at start.
    assert output.count("cluster.tls.enabled is false") == 1
