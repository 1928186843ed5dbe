"""How long from pausing a read datacenter's node to CqrsReplicationLagHigh firing in Prometheus.

Starts the same stack as tests/e2e/test_prometheus_e2e.py (the reference workload, a writer and
a regional exporter, Debian's Prometheus with the generated rules, scraping every 4 s and
evaluating every 1 s) against a running testbed, then repeats: pause eu-west's node until the
alert fires, resume it, wait until the alert clears. The alert's `for:` is shortened (10s by
default) so that a trial takes seconds: the time to *pending* is the detection time; firing
comes `for:` later (with the committed rules, 2m later).

Run (with a testbed up: `python -m testbed up`, same CQRS_TESTBED_NET / CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.prometheus_alert_latency --trials 5
Writes bench/results/prometheus_alert_latency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import save_results
from testbed.cluster import TestbedCluster
from tests.e2e.test_prometheus_e2e import PAUSED, SCRAPE_SECONDS, pause_until_firing, running_stack


def exporter_config(cluster: TestbedCluster) -> dict[str, Any]:
    """What tests/conftest.py's testbed_config gives the tests, for a CLI-started testbed."""
    return {
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {"write": cluster.write_datacenter, "read": list(cluster.read_datacenters)},
        "monitoring": {"create_schema": True, "replication_factor": 1},
    }


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prometheus_alert_latency")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument(
        "--for",
        dest="for_",
        default="10s",
        help="CqrsReplicationLagHigh's for: in the bench's rule file",
    )
    args = parser.parse_args(argv)

    cluster = TestbedCluster.load()
    if not cluster.is_running():
        print("no running testbed: start one with `python -m testbed up`", file=sys.stderr)
        return 1
    started = time.monotonic()
    trials: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-prometheus-") as tmp,
        running_stack(cluster, exporter_config(cluster), Path(tmp), for_=args.for_) as stack,
    ):
        setup = time.monotonic() - started
        print(f"stack up in {setup:.0f} s; {args.trials} trials, pausing {PAUSED}")
        for trial in range(args.trials):
            try:
                timings = pause_until_firing(stack, cluster)
            except AssertionError as exc:  # reported as a miss, not hidden
                trials.append({"fired": False, "error": str(exc)})
                print(f"trial {trial + 1}: {exc}")
                continue
            trials.append({"fired": True, **asdict(timings)})
            print(
                f"trial {trial + 1}: pause -> pending {timings.pending:.1f} s, "
                f"-> firing {timings.firing:.1f} s; resume -> cleared {timings.cleared:.1f} s"
            )
    fired = [t for t in trials if t["fired"]]

    result = {
        "alert": "CqrsReplicationLagHigh",
        "for": args.for_,
        "scrape_interval_s": SCRAPE_SECONDS,
        "evaluation_interval_s": 1,
        "threshold_s": 1.0,
        "trials": trials,
        "fired": f"{len(fired)} of {len(trials)}",
        "pause_to_pending_s": summary([t["pending"] for t in fired]),
        "pause_to_firing_s": summary([t["firing"] for t in fired]),
        "resume_to_cleared_s": summary([t["cleared"] for t in fired]),
        "stack_setup_s": round(setup, 1),
        "total_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result, indent=2))
    print(f"wrote {save_results('prometheus_alert_latency', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
