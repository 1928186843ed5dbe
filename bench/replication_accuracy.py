"""Accuracy of the replication lag against known stalls, beside a skewed clock-comparing heartbeat.

Runs the sentinel probe at its defaults (a sentinel every 100 ms, 50 ms polls) on the real
scheduler, and beside it two regional heartbeat readers of eu-west sharing the connection:
one whose wall clock is right, one whose wall clock runs `--skew` (250 ms) ahead. Each trial
pauses the eu-west node (SIGSTOP) for a known time, then resumes it (SIGCONT), and takes
the peak of each signal, sampled every 10 ms, against the pause's length:

- aligned: a sentinel is written just as the pause begins (the test suite does the same),
  so its true lag is the pause's length: this measures the estimator;
- random phase: the pause begins at a random point of the sentinel interval, as a real
  stall would: this adds the sampling error of writing a sentinel only every interval.

In healthy stretches it also compares, per sentinel, the one-clock visibility estimate with
the clock-comparing one (the reader's wall clock at first sight minus `written_at`).

Each trial also takes the peaks of the lag's exported lower and upper bounds, and counts the
trials whose bounds contain the pause. A trial starts only once the load is under 2.

Run (with a testbed up: `python -m testbed up`, same CQRS_TESTBED_NET / CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.replication_accuracy --trials 10 --pauses 0.5,1,2,5
    .venv/bin/python -m bench.replication_accuracy --trials 10 --pauses 1.2,2,5 --phases random
Writes bench/results/replication_accuracy.json; with `--interval 1s` (the sentinel cadence,
its round timeout 90 % of it), replication_accuracy_every_1s.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import ensure_schema_retrying, quiet_logging, save_results
from bench.quiet import load, wait_for_quiet
from exporter.clock import SystemClock
from exporter.config import Config, format_duration, parse_config
from exporter.config.base import parse_duration
from exporter.connection import CassandraConnection
from exporter.scheduler import ProbeRunner
from probes.base import ProbeContext
from probes.replication.heartbeat import HeartbeatProbe
from probes.replication.writer import WriterProbe
from testbed.cluster import TestbedCluster

TARGET = "eu-west"
HEALTHY = 0.2


class SkewedClock(SystemClock):
    """The system clocks, with the wall clock `skew` seconds ahead."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def time(self) -> float:
        return super().time() + self.skew


def configs(cluster: TestbedCluster, interval: str | None = None) -> tuple[Config, Config]:
    base: dict[str, Any] = {
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {
            "write": cluster.write_datacenter,
            "read": list(cluster.read_datacenters),
        },
        "monitoring": {"create_schema": True, "replication_factor": 1, "writer_id": "bench"},
    }
    if interval is not None:  # the sentinel cadence, and the heartbeat the readers expect
        seconds = parse_duration(interval)
        base["probes"] = {"replication": {
            "interval": interval, "timeout": format_duration(0.9 * seconds),
        }}
    regional = {
        **base,
        "datacenters": {**base["datacenters"], "local": TARGET},
        "probes": {"replication": {**base.get("probes", {}).get("replication", {}),
                                   "mode": "regional"}},
    }
    return parse_config(base), parse_config(regional)


@dataclass
class Sampler:
    """Samples (time, sentinel lag, honest and skewed heartbeat overdue, the lag's lower and
    upper bounds) every 10 ms."""

    probe: WriterProbe
    honest: HeartbeatProbe
    skewed: HeartbeatProbe
    samples: list[tuple[float, float, float, float, float, float]] = field(default_factory=list)
    clock_comparing: dict[str, list[float]] = field(
        default_factory=lambda: {"honest": [], "skewed": []}
    )
    one_clock: list[float] = field(default_factory=list)
    recording_healthy: bool = False

    async def run(self) -> None:
        seen: dict[str, float | None] = {"honest": None, "skewed": None}
        completed = 0
        while True:
            lag = self.probe.lag(TARGET)
            values = (self.honest.overdue(), self.skewed.overdue())
            bounds = self.probe.tracker.bounds(TARGET, self.probe.clock.monotonic())
            if lag is not None and None not in values and bounds is not None:
                least, most = bounds
                self.samples.append((
                    time.monotonic(), lag, values[0] or 0.0, values[1] or 0.0,
                    least, most if most is not None else float("inf"),
                ))
            for label, reader in (("honest", self.honest), ("skewed", self.skewed)):
                newest = reader.newest()
                if newest is not None and newest != seen[label]:
                    seen[label] = newest
                    if self.recording_healthy:
                        # First sight of a new heartbeat: reader's wall clock minus writer's.
                        self.clock_comparing[label].append(reader.clock.time() - newest)
            state = self.probe.tracker.targets[TARGET]
            if state.visibility.count != completed:
                completed = state.visibility.count
                if self.recording_healthy and state.estimate is not None:
                    self.one_clock.append(state.estimate)
            await asyncio.sleep(0.01)

    def peak(self, start: float, end: float, column: int) -> float:
        return max(s[column] for s in self.samples if start <= s[0] <= end)


async def wait_healthy(sampler: Sampler, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recent = [s for s in sampler.samples if s[0] > time.monotonic() - 1.5]
        if len(recent) > 50 and all(s[1] < HEALTHY for s in recent):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{TARGET} did not settle under {HEALTHY * 1000:.0f} ms")


async def trial(
    cluster: TestbedCluster,
    runner: ProbeRunner,
    sampler: Sampler,
    pause: float,
    aligned: bool,
) -> dict[str, float]:
    probe = sampler.probe
    load_before = await asyncio.to_thread(wait_for_quiet)
    await wait_healthy(sampler)
    written = probe.written
    while probe.written == written:
        await asyncio.sleep(0.002)
    if not aligned:
        await asyncio.sleep(random.uniform(0.0, probe.settings.interval))
    paused_at = time.monotonic()
    await asyncio.to_thread(cluster.pause, TARGET)
    acked = None
    try:
        if aligned:
            await runner.run_once(probe)
            acked = probe.tracker.last_ack
        await asyncio.sleep(max(0.0, pause - (time.monotonic() - paused_at)))
    finally:
        resumed_at = time.monotonic()
        await asyncio.to_thread(cluster.resume, TARGET)
    actual = resumed_at - paused_at
    await wait_healthy(sampler)
    end = time.monotonic()
    return {
        "pause_seconds": actual,
        # The aligned sentinel's own lag, had the node answered the instant it was resumed:
        # it was acknowledged a moment after the pause began.
        "known_lag": resumed_at - acked if acked is not None else actual,
        "sentinel_peak": sampler.peak(paused_at, end, 1),
        "heartbeat_peak": sampler.peak(paused_at, end, 2),
        "skewed_heartbeat_peak": sampler.peak(paused_at, end, 3),
        "lower_bound_peak": sampler.peak(paused_at, end, 4),
        "upper_bound_peak": sampler.peak(paused_at, end, 5),
        "recovery_seconds": end - resumed_at,
        "load_before": round(load_before, 2),
        "load_after": round(load(), 2),
    }


def summary(errors: list[float]) -> dict[str, float]:
    absolute = sorted(abs(e) for e in errors)
    return {
        "error_p50": statistics.median(errors),
        "abs_error_p50": statistics.median(absolute),
        "abs_error_p90": absolute[int(0.9 * (len(absolute) - 1))],
        "abs_error_max": absolute[-1],
        "error_min": min(errors),
        "error_max": max(errors),
    }


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p90": ordered[int(0.9 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cluster = TestbedCluster.load()
    writer_config, regional_config = configs(cluster, args.interval)
    connection = CassandraConnection(writer_config)
    await connection.connect()
    await ensure_schema_retrying(writer_config, connection)
    probe = WriterProbe(
        ProbeContext(writer_config, connection), writer_config.probes.replication
    )
    honest = HeartbeatProbe(
        ProbeContext(regional_config, connection), regional_config.probes.replication
    )
    skewed = HeartbeatProbe(
        ProbeContext(regional_config, connection, SkewedClock(args.skew)),
        regional_config.probes.replication,
    )
    runner = ProbeRunner([probe])
    await runner.start()

    async def heartbeat_rounds() -> None:
        while True:
            await honest.run()
            await skewed.run()
            await asyncio.sleep(1.0)

    sampler = Sampler(probe, honest, skewed)
    tasks = [asyncio.create_task(sampler.run()), asyncio.create_task(heartbeat_rounds())]
    result: dict[str, Any] = {"settings": {
        "interval": probe.settings.interval,
        "poll_interval": probe.settings.poll_interval,
        "read_timeout": probe.settings.read_timeout,
        "skew": args.skew,
        "trials": args.trials,
    }}
    try:
        await wait_healthy(sampler, timeout=120)
        sampler.recording_healthy = True
        await asyncio.sleep(args.healthy_seconds)
        sampler.recording_healthy = False
        result["healthy"] = {
            "one_clock_visibility": quantiles(sampler.one_clock),
            "clock_comparing_honest": quantiles(sampler.clock_comparing["honest"]),
            "clock_comparing_skewed": quantiles(sampler.clock_comparing["skewed"]),
        }
        print(json.dumps(result["healthy"], indent=2), flush=True)
        trials: list[dict[str, Any]] = []
        for pause in args.pauses:
            for aligned in args.phases:
                for i in range(args.trials):
                    row = await trial(cluster, runner, sampler, pause, aligned)
                    row.update({"requested": pause, "aligned": aligned})
                    trials.append(row)
                    print(
                        f"pause {pause:g}s {'aligned' if aligned else 'random '} #{i + 1}: "
                        f"actual {row['pause_seconds']:.3f} sentinel peak "
                        f"{row['sentinel_peak']:.3f} heartbeat overdue peak "
                        f"{row['heartbeat_peak']:.3f} (skewed {row['skewed_heartbeat_peak']:.3f}) "
                        f"bounds {row['lower_bound_peak']:.3f}..{row['upper_bound_peak']:.3f} "
                        f"load {row['load_before']:.2f}-{row['load_after']:.2f}",
                        flush=True,
                    )
        result["trials"] = trials
        table = []
        for pause in args.pauses:
            for aligned in args.phases:
                rows = [t for t in trials if t["requested"] == pause and t["aligned"] == aligned]
                table.append({
                    "pause": pause,
                    "aligned": aligned,
                    "sentinel": summary([t["sentinel_peak"] - t["pause_seconds"] for t in rows]),
                    "sentinel_vs_known_lag": summary(
                        [t["sentinel_peak"] - t["known_lag"] for t in rows]
                    ),
                    "heartbeat": summary([t["heartbeat_peak"] - t["pause_seconds"] for t in rows]),
                    "skewed_heartbeat": summary(
                        [t["skewed_heartbeat_peak"] - t["pause_seconds"] for t in rows]
                    ),
                    "bounds_contain_pause": sum(
                        t["lower_bound_peak"] <= t["pause_seconds"] <= t["upper_bound_peak"]
                        for t in rows
                    ),
                    "lower_bound_over_pause_max": max(
                        t["lower_bound_peak"] - t["pause_seconds"] for t in rows
                    ),
                    "trials": len(rows),
                    "load": [
                        min(t["load_before"] for t in rows), max(t["load_after"] for t in rows)
                    ],
                })
        result["summary"] = table
    finally:
        for task in tasks:
            task.cancel()
        await runner.stop()
        await honest.stop()
        await skewed.stop()
        await connection.close()
    return result


def report(result: dict[str, Any]) -> None:
    print("\npeak sentinel lag minus pause length, seconds (goal: |error| p90 <= 0.100, "
          "max <= 0.150);")
    print("bounds: trials whose peak lower and upper bounds contain the pause")
    print(f"{'pause':>6} {'phase':>7} | {'err p50':>8} {'|err| p90':>9} {'|err| max':>9} | "
          f"{'vs known p50':>12} | {'heartbeat p50':>13} {'skewed p50':>10} | "
          f"{'bounds':>7} {'low over':>8} | load")
    for row in result["summary"]:
        s, h, k = row["sentinel"], row["heartbeat"], row["skewed_heartbeat"]
        n = row["sentinel_vs_known_lag"]
        print(
            f"{row['pause']:>6g} {'aligned' if row['aligned'] else 'random':>7} | "
            f"{s['error_p50']:>+8.3f} {s['abs_error_p90']:>9.3f} {s['abs_error_max']:>9.3f} | "
            f"{n['error_p50']:>+12.3f} | {h['error_p50']:>+13.3f} {k['error_p50']:>+10.3f} | "
            f"{row['bounds_contain_pause']:>3}/{row['trials']:<3} "
            f"{row['lower_bound_over_pause_max']:>+8.3f} | "
            f"{row['load'][0]:.2f}-{row['load'][1]:.2f}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument(
        "--pauses", type=lambda s: [float(x) for x in s.split(",")], default=[0.5, 1, 2, 5]
    )
    parser.add_argument(
        "--phases", type=lambda s: [x == "aligned" for x in s.split(",")],
        default=[True, False], help="aligned,random (default both)",
    )
    parser.add_argument("--skew", type=float, default=0.25)
    parser.add_argument("--interval", help="the sentinel cadence, e.g. 1s (default: 100ms)")
    parser.add_argument("--healthy-seconds", type=float, default=60.0)
    return parser.parse_args()


if __name__ == "__main__":
    quiet_logging()
    arguments = parse_args()
    result = asyncio.run(main(arguments))
    suffix = "" if arguments.interval is None else f"_every_{arguments.interval}"
    written = save_results("replication_accuracy" + suffix, result)
    report(result)
    print(f"\nwrote {written}")
