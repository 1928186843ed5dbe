"""`make chaos` beside `make run`: the fault story on the demo, its alerts in a real Prometheus.

The demo runs on the suite's testbed with its rules' `for:` at 10 s; `python -m testbed
chaos` plays every step; each alert it targets must go pending, fire and resolve, as the
chaos command saw it and as Prometheus's own ALERTS series recorded it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from testbed import TestbedCluster
from testbed.chaos import Target, story
from tests.support import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.fault]

ALERT_FOR = "10s"
TRANSITION = re.compile(r"chaos: (\w+): (\S+) (pending|firing|resolved) after (\d+) s")


def query_range(prometheus: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "5"})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}", timeout=10) as r:
        body = json.load(r)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def as_selector(target: Target) -> str:
    labels = [("alertname", target.alert), *target.labels]
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels) + "}"


def wait_for_demo(process: subprocess.Popen[bytes], log: Path, base_dir: Path) -> None:
    deadline = time.monotonic() + 240
    while not (base_dir / "demo.json").exists() or "listening on" not in log.read_text():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(1.0)


def test_the_chaos_story_makes_each_targeted_alert_pend_fire_and_resolve(
    healthy_testbed: TestbedCluster, tmp_path: Path
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    prometheus = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "CQRS_TESTBED_DIR": str(healthy_testbed.base_dir),
        "CQRS_TESTBED_NET": healthy_testbed.net,
        "PYTHONUNBUFFERED": "1",
    }
    demo_log = tmp_path / "demo.log"
    began = time.time()
    with demo_log.open("w") as output:
        demo = subprocess.Popen(
            [sys.executable, "-m", "testbed", "demo", "--listen", listen,
             "--keyspace", f"chaos_{uuid.uuid4().hex[:8]}",
             "--prometheus-port", prometheus.rsplit(":", 1)[1], "--alert-for", ALERT_FOR],
            stdout=output, stderr=subprocess.STDOUT, env=env,
        )
        try:
            wait_for_demo(demo, demo_log, healthy_testbed.base_dir)
            chaos = subprocess.run(
                [sys.executable, "-m", "testbed", "chaos", "--dir", str(healthy_testbed.base_dir)],
                capture_output=True, text=True, env=env, timeout=1500,
            )
            ended = time.time()
            recorded = {
                str(target): query_range(prometheus, f"ALERTS{as_selector(target)}", began, ended)
                for step in story(healthy_testbed, 0) for target in step.targets
            }
            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=60)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    (tmp_path / "chaos.log").write_text(chaos.stdout + chaos.stderr)
    lines = [
        ((line.split(":")[1:2] or [""])[0].strip(), line) for line in chaos.stdout.splitlines()
    ]
    failed = {
        step for step, line in lines if " did not " in line or " were still active " in line
    }
    # A failed step's whole story first: the tail of a long output may not show it.
    transcript = [line for step, line in lines if step in failed]
    assert chaos.returncode == 0, (transcript, chaos.stderr[-2000:], demo_log.read_text()[-2000:])
    assert "Traceback" not in chaos.stderr
    seen: dict[tuple[str, str], list[str]] = {}
    for step, target, state, _ in TRANSITION.findall(chaos.stdout):
        seen.setdefault((step, target), []).append(state)
    expected = {
        (step.key, str(target)) for step in story(healthy_testbed, 0) for target in step.targets
    }
    assert set(seen) == expected, (sorted(seen), chaos.stdout[-3000:])
    for key, states in seen.items():
        assert states == ["pending", "firing", "resolved"], (key, chaos.stdout)
    for target, series in recorded.items():
        states = {s["metric"].get("alertstate") for s in series}
        assert states >= {"pending", "firing"}, (target, series)
