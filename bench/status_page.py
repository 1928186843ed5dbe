"""How long the status page takes to render on the event loop, by number of components.

No cluster: a health evaluator on a fake clock is fed synthetic readings, one evaluation a
second for longer than the history's window, so every component has a full 15 minutes of
slots (the most the page ever draws). Components are split as a deployment would have
them: the write path, the command latency, a replication lag per read datacenter, a query
latency per datacenter, and a sync lag and a failure rate per read model. Each size is
gathered and rendered `--renders` times: the copy taken on the event loop (`gather`) and
the formatting done in the render thread (`render`) are timed apart; the median, p90 and
max of each are reported.

Run:
    .venv/bin/python -m bench.status_page --components 10,30,60 --renders 300
Writes bench/results/status_page.json.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Any

from bench.common import save_results
from exporter.clock import FakeClock
from exporter.config import parse_config
from exporter.health.evaluation import HealthEvaluator
from exporter.health.monitor import HealthMonitor
from exporter.health.readings import ProbeReading
from exporter.results import Check, Observation, ProbeOutcome
from exporter.scheduler import ProbeRunState
from exporter.status.page import PageState, gather, render


def observations(components: int, rng: random.Random) -> list[Observation]:
    """About `components` readings: two per datacenter, two per read model."""
    dcs = max(2, components // 4)
    models = max(1, (components - 2 * dcs) // 2)
    found = [
        Observation(Check.WRITE_PATH, "dc0", 1.0),
        Observation(Check.COMMAND_LATENCY_P99, "dc0", 0.01 * rng.random(), samples=500),
    ]
    for i in range(dcs):
        found.append(Observation(Check.QUERY_LATENCY_P99, f"dc{i}", 0.02 * rng.random(), 500))
        if i:
            found.append(Observation(Check.REPLICATION_LAG, f"dc{i}", rng.random()))
    for i in range(models):
        found.append(Observation(Check.READ_MODEL_SYNC_LAG, f"model_{i}", 3 * rng.random()))
        found.append(
            Observation(Check.SYNC_FAILURE_RATE, f"model_{i}", 0.001 * rng.random(), samples=99)
        )
    return found[:components]


def measure(components: int, renders: int) -> dict[str, Any]:
    rng = random.Random(components)
    dcs = sorted({o.component for o in observations(components, rng) if o.component[:2] == "dc"})
    config = parse_config(
        {
            "cluster": {"contact_points": ["127.0.0.1"]},
            "datacenters": {"write": "dc0", "read": [dc for dc in dcs if dc != "dc0"]},
        }
    )
    clock = FakeClock()
    runs = 0
    latest: list[Observation] = []
    monitor = HealthMonitor(
        HealthEvaluator(config, clock), lambda: [ProbeReading("all", runs, tuple(latest))], 1.0
    )
    for _ in range(int(monitor.history.window) + 60):
        runs += 1
        latest = observations(components, rng)
        clock.advance(1.0)
        monitor.evaluate_now()
    probes = {
        f"probe_{i}": ProbeRunState(
            runs=runs,
            last_outcome=ProbeOutcome.ok(),
            last_duration=0.01,
            last_run_time=clock.time(),
            last_success_time=clock.time(),
        )
        for i in range(8)
    }
    def state() -> PageState:
        return gather(
            config, monitor.snapshot, monitor.history, probes, {"probe_scheduler": True},
            {"config_loaded": True}, clock,
        )  # fmt: skip

    page = render(state())
    gathering, rendering = [], []
    for _ in range(renders):
        started = time.perf_counter()
        copied = state()
        gathered = time.perf_counter()
        render(copied)
        rendering.append((time.perf_counter() - gathered) * 1000)
        gathering.append((gathered - started) * 1000)
    drawn = sum(len(items) for items in monitor.snapshot.overall.components.values())
    return {
        "components": drawn,
        "bytes": len(page.encode()),
        "gather_ms": spread(gathering),
        "render_ms": spread(rendering),
    }


def spread(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(ordered[int(len(ordered) * 0.9)], 3),
        "max": round(ordered[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", default="10,30,60")
    parser.add_argument("--renders", type=int, default=300)
    args = parser.parse_args()
    results = []
    load = os.getloadavg()[0]
    for size in (int(n) for n in args.components.split(",")):
        figures = measure(size, args.renders)
        results.append(figures)
        gather, page = figures["gather_ms"], figures["render_ms"]
        print(
            f"{figures['components']:3d} components, {figures['bytes']:6d} bytes: "
            f"gather on the loop median {gather['median']} ms (max {gather['max']}), "
            f"render median {page['median']} ms, p90 {page['p90']} ms (max {page['max']})"
        )
    path = save_results(
        "status_page",
        {"load_average": [load, os.getloadavg()[0]], "renders": args.renders, "sizes": results},
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
