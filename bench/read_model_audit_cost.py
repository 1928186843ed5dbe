"""What the audit costs: queries per second against its budget, and the exporter's CPU.

The reference workload runs in its own process (20 orders per second, in-request sync);
the exporter runs here with one audit at a time, under several budgets and sample sizes.
Every request the audit sends is timed, so the busiest second is measured, not assumed.

Run: .venv/bin/python -m bench.read_model_audit_cost [--seconds N]
Writes bench/results/read_model_audit_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from typing import Any

from bench.common import save_results, testbed
from bench.read_model_common import probe, running_exporter
from testbed import TestbedCluster
from testbed.workload import read_models as declared

SETTINGS = (
    # (label, audit settings, interval)
    ("defaults", {}, "10s"),
    ("budget-bound", {"samples_per_run": 200, "budget": 10}, "10s"),
    ("budget 50", {"samples_per_run": 400, "budget": 50}, "10s"),
    ("budget 200", {"samples_per_run": 2000, "budget": 200}, "10s"),
)


class Timed:
    """The exporter's connection, timing each request the audit sends."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.starts: list[float] = []

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.starts.append(time.monotonic())
        return await self._connection.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def busiest_second(starts: list[float]) -> int:
    most, j = 0, 0
    for i, start in enumerate(starts):
        j = max(j, i)
        while j < len(starts) and starts[j] < start + 1.0:
            j += 1
        most = max(most, j - i)
    return most


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(cluster: TestbedCluster, keyspace: str, label: str,
                  settings: dict[str, Any], interval: str, seconds: float) -> dict[str, Any]:
    model = declared.audit_orders_by_customer(keyspace, **settings)
    model["interval"] = interval
    async with running_exporter(cluster, [model]) as exporter:
        audit = probe(exporter, "orders_by_customer")
        timed = Timed(audit.connection)
        audit.connection = timed  # type: ignore[assignment]
        checks_before, cpu_before = audit.checks, cpu_seconds()
        began = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - began
        checks = audit.checks - checks_before
        cpu = cpu_seconds() - cpu_before
    queries = len(timed.starts)
    budget = audit.settings.budget
    return {
        "setting": label,
        "interval": interval,
        "budget_qps": budget,
        "samples_per_run": audit.settings.samples_per_run,
        "queries_per_second": round(queries / elapsed, 2),
        "busiest_second": busiest_second(timed.starts),
        "checks_per_second": round(checks / elapsed, 2),
        "queries_per_check": round(queries / checks, 2) if checks else None,
        "exporter_cpu_ms_per_query": round(1000 * cpu / queries, 3) if queries else None,
        "seconds": round(elapsed, 1),
    }


def start_workload(cluster: TestbedCluster, keyspace: str,
                   seconds: float) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "testbed.workload", "--contact-points", *cluster.contact_points,
        "--datacenter", cluster.write_datacenter, "--keyspace", keyspace,
        "--replication", ",".join(f"{dc}:1" for dc in cluster.datacenters),
        "--rate", "20", "--mode", "in-request", "--no-projector", "--duration", str(seconds),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ})


async def main_async(seconds: float) -> list[dict[str, Any]]:
    keyspace = f"bench_cost_{int(time.time()) % 100000}"
    total = 30 + len(SETTINGS) * (seconds + 15)
    with testbed() as cluster:
        workload = start_workload(cluster, keyspace, total)
        try:
            await asyncio.sleep(30)  # schema, and rows for the audit to find
            return [await measure(cluster, keyspace, label, settings, interval, seconds)
                    for label, settings, interval in SETTINGS]
        finally:
            workload.terminate()
            workload.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    rows = asyncio.run(main_async(args.seconds))
    print(f"{'setting':>13} {'budget':>7} {'q/s':>7} {'busiest 1s':>11} {'checks/s':>9} "
          f"{'q/check':>8} {'cpu ms/q':>9}")
    for row in rows:
        print(f"{row['setting']:>13} {row['budget_qps']:>7} {row['queries_per_second']:>7} "
              f"{row['busiest_second']:>11} {row['checks_per_second']:>9} "
              f"{row['queries_per_check']!s:>8} {row['exporter_cpu_ms_per_query']!s:>9}")
    print(f"written to {save_results('read_model_audit_cost', {'runs': rows})}")


if __name__ == "__main__":
    main()
