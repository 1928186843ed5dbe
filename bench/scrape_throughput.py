"""/metrics throughput of the exporter against prometheus_client's own HTTP server.

Two processes serve the same families side by side: the exporter (`cqrs-exporter serve`,
its cached render) and `prometheus_client.start_http_server` over the families parsed from
the exporter's own /metrics (it formats them anew for every request, as it always does).
wrk loads each in turn, alternating, with plain requests and with the headers Prometheus
sends (OpenMetrics and gzip); the figure is the ratio of the medians. Then a storm of
`--storm` concurrent connections scrapes the exporter while /health/live is timed, and the
exporter's RSS is read before, at the end and `--settle` seconds after.

No cluster is needed: the exporter's Cassandra is unreachable, so every pre-created series
is exported (with `--testbed`, the running testbed's, with the latency probes measuring:
run it when no other bench uses that testbed).

Run: .venv/bin/python -m bench.scrape_throughput [--rounds 3 --seconds 8]
Writes bench/results/scrape_throughput.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.common import save_results
from bench.quiet import load, rss_bytes, wait_for_quiet
from testbed.processes import stop_child
from tests.support import free_port

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}

REFERENCE = textwrap.dedent(
    """
    import sys, time
    from prometheus_client import start_http_server
    from prometheus_client.parser import text_string_to_metric_families

    class Families:
        def __init__(self, families):
            self.families = families
        def collect(self):
            return iter(self.families)

    text = open(sys.argv[1]).read()
    start_http_server(int(sys.argv[2]), addr="127.0.0.1",
                      registry=Families(list(text_string_to_metric_families(text))))
    print("serving", flush=True)
    while True:
        time.sleep(3600)
    """
)


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


def wait_until_serving(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            get(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def exporter_config(testbed: bool) -> dict[str, Any]:
    if testbed:
        from bench.common import testbed as running_testbed
        from tests.support import config_for

        with running_testbed() as cluster:
            return config_for(cluster)
    return {
        "cluster": {"contact_points": ["127.0.0.1"], "port": free_port(), "connect_timeout": "1s"},
        "datacenters": {"write": "us-east", "read": ["ca-central", "eu-west"]},
    }


@contextlib.contextmanager
def process(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    try:
        yield proc
    finally:
        stop_child(proc)


def wrk(url: str, seconds: float, connections: int, headers: dict[str, str]) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "requests_per_second": float(rate.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def throughput(
    urls: dict[str, str], rounds: int, seconds: float, connections: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for variant, headers in (("plain", {}), ("prometheus_headers", PROMETHEUS_HEADERS)):
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
        loads = []
        for _ in range(rounds):
            loads.append(wait_for_quiet())
            for name, url in urls.items():
                runs[name].append(wrk(url, seconds, connections, headers))
        medians = {
            name: statistics.median(r["requests_per_second"] for r in values)
            for name, values in runs.items()
        }
        results[variant] = {
            "runs": runs,
            "median_requests_per_second": medians,
            "ratio": round(medians["exporter"] / medians["prometheus_client"], 1),
            "load_average": [*loads, load()],
        }
        print(
            f"{variant:>18}: exporter {medians['exporter']:.0f}/s, prometheus_client "
            f"{medians['prometheus_client']:.0f}/s, ratio {results[variant]['ratio']}x "
            f"(load {loads[0]:.2f}..{load():.2f})",
            flush=True,
        )
    return results


def storm(base: str, pid: int, connections: int, seconds: float, settle: float) -> dict[str, Any]:
    """`connections` concurrent scrapers for `seconds`; /health/live timed all along."""
    wait_for_quiet()
    live: list[float] = []
    stop = threading.Event()

    def time_live() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                get(base + "/health/live", timeout=10)
                live.append(time.monotonic() - started)
            except OSError:
                live.append(float("inf"))
            time.sleep(0.1)

    before = rss_bytes(pid)
    started_load = load()
    timer = threading.Thread(target=time_live)
    timer.start()
    try:
        argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
        argv += [f"-H{k}: {v}" for k, v in PROMETHEUS_HEADERS.items()]
        out = subprocess.run(
            [*argv, base + "/metrics"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        stop.set()
        timer.join()
    at_end = rss_bytes(pid)
    time.sleep(settle)
    after = rss_bytes(pid)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    ordered = sorted(live)
    figures = {
        "connections": connections,
        "seconds": seconds,
        "requests_per_second": float(rate.group(1)) if rate else None,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "health_live_max_ms": round(ordered[-1] * 1000, 1),
        "health_live_p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 1),
        "rss_mb": {
            "before": round(before / 2**20, 1),
            "at_end": round(at_end / 2**20, 1),
            f"after_{settle:g}s": round(after / 2**20, 1),
        },
        "load_average": [started_load, load()],
    }
    print(f"storm: {json.dumps(figures)}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="0: the storm only")
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--storm", type=int, default=1000, help="connections (0: no storm)")
    parser.add_argument("--settle", type=float, default=60.0)
    parser.add_argument("--testbed", action="store_true", help="scrape a testbed's exporter")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (scripts/setup.sh --for test installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(exporter_config(args.testbed)))
        port, reference_port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
        serve = [sys.executable, "-m", "exporter", "serve", "--config", str(config)]
        with process([*serve, "--listen", f"127.0.0.1:{port}"]) as exporter:
            wait_until_serving(base + "/metrics")
            time.sleep(5)  # past start-up: every collector has its series
            text = get(base + "/metrics")
            families = Path(tmp) / "families.txt"
            families.write_bytes(text)
            reference = [sys.executable, "-c", REFERENCE, str(families), str(reference_port)]
            with process(reference):
                reference_url = f"http://127.0.0.1:{reference_port}/metrics"
                wait_until_serving(reference_url)
                figures: dict[str, Any] = {
                    "metrics_lines": len(text.splitlines()),
                    "metrics_bytes": len(text),
                    "wrk_connections": args.connections,
                    "wrk_seconds": args.seconds,
                }
                if args.rounds:
                    figures["throughput"] = throughput(
                        {"prometheus_client": reference_url, "exporter": base + "/metrics"},
                        args.rounds,
                        args.seconds,
                        args.connections,
                    )
            if args.storm:
                figures["storm"] = storm(base, exporter.pid, args.storm, 10.0, args.settle)
    name = "scrape_throughput" if args.rounds else "scrape_storm"
    print(f"wrote {save_results(name, figures)}")


if __name__ == "__main__":
    main()
