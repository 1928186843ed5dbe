"""The replication lag as a user sees it: on /health, on /metrics and on /freshness.

One real `cqrs-exporter serve` process (every probe at its defaults: reachability, latency
streams, backlog; but a sentinel every `--interval`, 100 ms, and health evaluations every
`--evaluation-interval`, 250 ms) runs on the testbed with no workload, and the bench measures
it from outside, in phases:

- quiet: `--quiet-minutes` of a healthy testbed, /health read every 250 ms and /metrics
  every second. Any component DEGRADED or DOWN is a false breach; it also gives each
  datacenter's request rate, all probes together (`cqrs_budget_requests_total`, over the
  whole phase and the most in any 10 s), against the budget of 50 a second;
- delay: a steady one-way delay into eu-west (`--delay-ms`, Toxiproxy on its replication
  only), then `cqrs_replication_lag_seconds{target_datacenter="eu-west"}` read every 250 ms
  (the exposition's render period) for `--delay-seconds`, and /freshness's wait at 0.999 at
  the end and again after the heal (the exporter's freshness window is `--freshness-window`,
  so that it fills and empties within the phase);
- stalls: `--trials` stalls of eu-west's node (SIGSTOP for `--stall` seconds), each starting
  at a random moment of the sentinel interval once the load is under 2. /health is read every
  20 ms: the time from the stall's start to replication_lag DEGRADED for eu-west, and from
  the resume to UP again.

Run (with a testbed up: `python -m testbed up`, same CQRS_TESTBED_NET / CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.replication_health --quiet-minutes 10 --trials 10
and, for the request rate at another sentinel cadence,
    .venv/bin/python -m bench.replication_health --quiet-minutes 2 --delay-ms 0 --trials 0 \
        --interval 1s --output replication_health_every_1s
Writes bench/results/replication_health.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import save_results, testbed
from bench.quiet import load, wait_for_quiet
from bench.served import Samples, Served, base_config, by_dc
from exporter.config.base import parse_duration
from testbed import TestbedCluster

TARGET = "eu-west"
BUDGET = 50.0


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def lag_of(samples: Samples, dc: str) -> float | None:
    for labels, value in samples.get("cqrs_replication_lag_seconds", []):
        if labels.get("target_datacenter") == dc:
            return value
    return None


def replication_status(health: dict[str, Any], dc: str) -> str | None:
    check = health.get("components", {}).get("replication_lag", {})
    component = check.get("components", {}).get(dc)
    return None if component is None else str(component["status"])


def wait_replication_up(served: Served, dc: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while replication_status(served.get_json("/health"), dc) != "UP":
        if time.monotonic() > deadline:
            raise SystemExit(f"replication_lag for {dc} was not UP within {timeout:g} s")
        time.sleep(0.05)


def breaching(health: dict[str, Any]) -> list[str]:
    """Every component of /health?verbose in a breach, as check/component=STATUS (UNKNOWN,
    e.g. a latency window still filling, is no breach)."""
    found = []
    for check, node in health.get("components", {}).items():
        leaves = node.get("components", {check: node})
        for name, leaf in leaves.items():
            if leaf["status"] in ("DEGRADED", "DOWN"):
                found.append(f"{check}/{name}={leaf['status']}")
    return found


def quiet_phase(served: Served, minutes: float) -> dict[str, Any]:
    print(f"quiet: {minutes:g} min of a healthy testbed (load {load():.2f})", flush=True)
    started = time.monotonic()
    end = started + minutes * 60
    breaches: list[tuple[float, list[str]]] = []
    counts: list[tuple[float, dict[str, float]]] = []
    peak: dict[str, float] = {}
    loads: list[float] = []
    evaluations = 0
    next_scrape = started
    while (now := time.monotonic()) < end:
        found = breaching(served.get_json("/health?verbose"))
        evaluations += 1
        if found:
            breaches.append((round(now - started, 2), found))
        if now >= next_scrape:
            next_scrape += 1.0
            _, _, samples = served.scrape()
            counts.append((now, by_dc(samples, "cqrs_budget_requests_total")))
            for labels, value in samples.get("cqrs_replication_lag_seconds", []):
                dc = labels["target_datacenter"]
                peak[dc] = max(peak.get(dc, 0.0), value)
            loads.append(load())
        time.sleep(max(0.0, 0.25 - (time.monotonic() - now)))
    rates: dict[str, Any] = {}
    for dc in counts[0][1]:
        first, last = counts[0], counts[-1]
        ten = [
            (counts[i + 10][1][dc] - counts[i][1][dc]) / (counts[i + 10][0] - counts[i][0])
            for i in range(len(counts) - 10)
        ]
        rates[dc] = {
            "mean": round((last[1][dc] - first[1][dc]) / (last[0] - first[0]), 2),
            "max_10s": round(max(ten), 2) if ten else None,
        }
    figures = {
        "minutes": minutes,
        "health_reads": evaluations,
        "false_breaches": len(breaches),
        "first_breaches": breaches[:5],
        "peak_lag_ms": {dc: round(v * 1000, 1) for dc, v in sorted(peak.items())},
        "requests_per_second": rates,
        "budget_per_datacenter": BUDGET,
        "load_1m": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
    }
    print(f"quiet: {figures}", flush=True)
    return figures


def freshness_wait(served: Served, dc: str) -> tuple[float | None, int]:
    body = served.get_json("/freshness")["datacenters"][dc]
    return body["quantiles_seconds"].get("0.999"), int(body["samples"])


def delay_phase(
    served: Served, cluster: TestbedCluster, delay_ms: int, seconds: float, window: float
) -> dict[str, Any]:
    wait_for_quiet()
    before = freshness_wait(served, TARGET)
    print(f"delay: {delay_ms} ms into {TARGET} (load {load():.2f})", flush=True)
    cluster.delay(TARGET, delay_ms)
    try:
        settle = time.monotonic() + 10.0
        while time.monotonic() < settle:
            time.sleep(0.1)
        lags: list[float] = []
        loads = [load()]
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            value = lag_of(served.scrape()[2], TARGET)
            if value is not None:
                lags.append(value)
            loads.append(load())
            time.sleep(max(0.0, 0.25 - (time.monotonic() - now)))
        # The freshness window has held nothing but delayed sentinels for a while now.
        filled = time.monotonic() + max(0.0, window - seconds)
        while time.monotonic() < filled:
            time.sleep(0.5)
        during = freshness_wait(served, TARGET)
    finally:
        cluster.heal(TARGET)
    emptied = time.monotonic() + window + 5.0
    while time.monotonic() < emptied:
        time.sleep(0.5)
    after = freshness_wait(served, TARGET)
    target = delay_ms / 1000
    errors = [v - target for v in lags]
    figures = {
        "delay_ms": delay_ms,
        "readings": len(lags),
        "lag_ms": {
            name: round(quantile(lags, q) * 1000, 1)
            for name, q in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))
        }
        | {"min": round(min(lags) * 1000, 1), "max": round(max(lags) * 1000, 1)},
        "within_50ms": f"{sum(1 for e in errors if abs(e) <= 0.05)}/{len(errors)}",
        "freshness_window_s": window,
        "freshness_p999_ms": {
            name: None if value is None else round(value * 1000, 1)
            for name, (value, _) in (("before", before), ("during", during), ("after", after))
        },
        "freshness_samples": {"before": before[1], "during": during[1], "after": after[1]},
        "load_1m": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
    }
    print(f"delay: {figures}", flush=True)
    return figures


def stall_phase(
    served: Served, cluster: TestbedCluster, trials: int, stall: float, interval: float
) -> dict[str, Any]:
    rng = random.Random()
    detected: list[float] = []
    recovered: list[float] = []
    loads: list[float] = []
    for trial in range(trials):
        loads.append(wait_for_quiet())
        wait_replication_up(served, TARGET)
        time.sleep(rng.uniform(1.0, 1.0 + interval))  # a random moment of the interval
        started = time.monotonic()
        cluster.pause(TARGET)
        try:
            seen: float | None = None
            while (now := time.monotonic()) < started + stall:
                if seen is None and replication_status(served.get_json("/health"), TARGET) in (
                    "DEGRADED",
                    "DOWN",
                ):
                    seen = now - started
                time.sleep(0.02)
        finally:
            cluster.resume(TARGET)
        resumed = time.monotonic()
        wait_replication_up(served, TARGET)
        back = time.monotonic() - resumed
        if seen is None:
            raise SystemExit(f"trial {trial + 1}: no DEGRADED within the {stall:g} s stall")
        detected.append(seen)
        recovered.append(back)
        print(
            f"stall {trial + 1}/{trials}: DEGRADED after {seen:.3f} s, UP {back:.3f} s after "
            f"the resume (load {loads[-1]:.2f})",
            flush=True,
        )
    figures = {
        "trials": trials,
        "stall_s": stall,
        "to_degraded_s": {
            "p50": round(statistics.median(detected), 3),
            "p90": round(quantile(detected, 0.9), 3),
            "max": round(max(detected), 3),
            "all": [round(v, 3) for v in detected],
        },
        "goal_s": 1.0 + 1.0,
        "resume_to_up_s": {
            "p50": round(statistics.median(recovered), 3),
            "max": round(max(recovered), 3),
        },
        "load_1m": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
    }
    print(f"stalls: {figures}", flush=True)
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"load_before": round(wait_for_quiet(), 2)}
    with testbed() as cluster, tempfile.TemporaryDirectory() as directory:
        config = base_config(cluster)
        config["monitoring"]["writer_id"] = "bench-replication-health"
        config["slo"] = {"freshness": {"window": f"{args.freshness_window:g}s"}}
        seconds = parse_duration(args.interval)
        config["probes"] = {
            "replication": {"interval": args.interval, "timeout": f"{0.9 * seconds:g}s"}
        }
        config["health"] = {"evaluation_interval": args.evaluation_interval}
        figures["sentinel_interval_s"] = seconds
        figures["evaluation_interval_s"] = parse_duration(args.evaluation_interval)
        served = Served("exporter", config, Path(directory))
        try:
            served.wait_ready()
            wait_replication_up(served, TARGET)
            warm = time.monotonic() + args.warmup
            while time.monotonic() < warm:
                time.sleep(0.5)
            if args.quiet_minutes > 0:
                figures["quiet"] = quiet_phase(served, args.quiet_minutes)
            if args.delay_ms > 0:
                figures["delay"] = delay_phase(
                    served, cluster, args.delay_ms, args.delay_seconds, args.freshness_window
                )
            if args.trials > 0:
                figures["stalls"] = stall_phase(
                    served, cluster, args.trials, args.stall, parse_duration(args.interval)
                )
        finally:
            cluster.heal(TARGET)
            served.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet-minutes", type=float, default=10.0)
    parser.add_argument("--delay-ms", type=int, default=300)
    parser.add_argument("--delay-seconds", type=float, default=60.0)
    parser.add_argument("--freshness-window", type=float, default=30.0)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--stall", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--interval", default="100ms", help="the sentinel cadence")
    parser.add_argument("--evaluation-interval", default="250ms", help="health evaluations")
    parser.add_argument("--output", default="replication_health")
    args = parser.parse_args()
    figures = run(args)
    print(f"wrote {save_results(args.output, figures)}")


if __name__ == "__main__":
    main()
