"""Sharding end to end: two shards and one whole exporter, scraped by one real Prometheus.

Thirty read models of the three methods and six declared queries (tests/scale_support.py)
are served by a single exporter and by two shards (`serve --shard 0/2`, `--shard 1/2`). In
Prometheus the shards together show every read model and query exactly once, the same
aggregates as the single exporter, and replication from shard 0 alone; each shard's
`/health` covers its own read models.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.prometheus import PrometheusServer
from tests.e2e.test_prometheus_e2e import Service, free_port, http_get, start, wait_for
from tests.scale_support import create_tables, scale_config
from tests.support import merge, serve_command

pytestmark = [pytest.mark.cluster]

MODELS = 30
QUERIES = 6
SHARDS = '"shard-0|shard-1"'


class NamedTargets(PrometheusServer):
    """Each target's `instance` label is its name, so the queries can tell them apart."""

    names: dict[str, str]

    def config(self) -> dict[str, Any]:
        config = super().config()
        config["scrape_configs"][0]["static_configs"] = [
            {"targets": [address], "labels": {"instance": name}}
            for name, address in self.names.items()
        ]
        return config


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    import urllib.parse

    status, body = http_get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    data = json.loads(body)
    assert status == 200 and data["status"] == "success", f"{expr}: {data}"
    return list(data["data"]["result"])


def scalar(prometheus: str, expr: str) -> float | None:
    result = query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


def test_shards_in_prometheus_give_the_single_exporters_aggregates(
    testbed_cluster: Any, testbed_config: dict[str, Any], tmp_path: Path
) -> None:
    started = time.monotonic()
    datacenters = [testbed_config["datacenters"]["write"], *testbed_config["datacenters"]["read"]]
    base = merge(testbed_config, {"probes": {"latency": {"rate": 2}}})
    whole = scale_config(base, datacenters, MODELS, QUERIES, query_rate=0.5)
    asyncio.run(create_tables(whole, datacenters))

    services: list[Service] = []
    addresses: dict[str, str] = {}
    configs = {
        "single": merge(whole, {"monitoring": {"writer_id": "single"}}),
        "shard-0": whole,
        "shard-1": whole,
    }
    prometheus: PrometheusServer | None = None
    try:
        for name, config in configs.items():
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config))
            address = f"127.0.0.1:{free_port()}"
            argv = serve_command(path, address)
            if name.startswith("shard-"):
                argv += ["--shard", f"{name[-1]}/2"]
            services.append(start(name, argv, tmp_path))
            addresses[name] = address
        prometheus = NamedTargets(tmp_path / "prometheus", [], free_port(),
                                  scrape_interval="2s", evaluation_interval="2s")
        prometheus.names = addresses
        prometheus.start()
        url = prometheus.url

        def everyone_scraped() -> bool:
            for service in services:
                assert service.process.poll() is None, f"{service.name} exited:\n{service.tail()}"
            runs = 'cqrs_probe_runs_total{probe="reachability"}'
            up = query(url, f"up == 1 and on (instance) {runs} > 0")
            return len(up) == 3

        wait_for(everyone_scraped, timeout=90, interval=1, message="all three scraped")

        # Every read model and query exactly once across the shards, as in the single one.
        def same_read_models() -> tuple[float | None, ...] | None:
            single = scalar(url, 'count(cqrs_read_model_info{instance="single"})')
            shards = scalar(url, f"count(cqrs_read_model_info{{instance=~{SHARDS}}})")
            distinct = scalar(
                url, f"count(count by (read_model) (cqrs_read_model_info{{instance=~{SHARDS}}}))"
            )
            seen = (single, shards, distinct)
            return seen if seen == (MODELS, MODELS, MODELS) else None

        wait_for(same_read_models, timeout=30, interval=1, message="30 read models each side")
        for method in ("checkpoint", "audit", "sentinel"):
            selector = f'method="{method}"'
            assert scalar(url, f'count(cqrs_read_model_info{{{selector},instance="single"}})') \
                == scalar(url, f"count(cqrs_read_model_info{{{selector},instance=~{SHARDS}}})")
        per_shard = {
            r["metric"]["instance"]: float(r["value"][1])
            for r in query(url, f"count by (instance) (cqrs_read_model_info{{instance=~{SHARDS}}})")
        }
        assert set(per_shard) == {"shard-0", "shard-1"} and sum(per_shard.values()) == MODELS

        def same_queries() -> bool:
            expr = 'count(count by (query) (cqrs_query_latency_samples{query!="",instance=~%s}))'
            shards = scalar(url, expr % SHARDS)
            single = scalar(url, expr % '"single"')
            overlap = scalar(
                url,
                'count(count by (query) (count by (query, instance) '
                f'(cqrs_query_latency_samples{{query!="",instance=~{SHARDS}}})) > 1)',
            )
            return shards == single == QUERIES and overlap is None

        wait_for(same_queries, timeout=60, interval=1, message="6 declared queries each side")

        # The generated alerts' aggregation, across shards and single alike.
        lag = "count(max by (read_model) (cqrs_read_model_sync_lag_seconds{instance=~%s}))"
        wait_for(
            lambda: scalar(url, lag % SHARDS) == scalar(url, lag % '"single"')
            and scalar(url, lag % '"single"'),
            timeout=60, interval=2, message="the same read models measured on both sides",
        )
        # Replication from shard 0 alone; every shard knows its shard.
        replication = query(url, "count by (instance) (cqrs_replication_lag_seconds)")
        assert {r["metric"]["instance"] for r in replication} == {"single", "shard-0"}
        shards = {
            r["metric"]["instance"]: (r["metric"]["index"], r["metric"]["count"])
            for r in query(url, "cqrs_exporter_shard_info")
        }
        assert shards == {"single": ("0", "1"), "shard-0": ("0", "2"), "shard-1": ("1", "2")}

        # Each shard's /health covers its own read models, and together all of them.
        covered: list[str] = []
        for name in ("shard-0", "shard-1"):
            _, body = http_get(f"http://{addresses[name]}/health?verbose")
            check = json.loads(body)["components"]["read_model_sync_lag"]
            mine = set(check.get("components", {}))
            models = {r["metric"]["read_model"] for r in query(
                url, f'cqrs_read_model_info{{instance="{name}"}}')}
            assert mine == models, name
            covered += mine
        assert sorted(covered) == sorted(m["name"] for m in whole["read_models"])
        assert time.monotonic() - started < 150
    finally:
        if prometheus is not None:
            prometheus.stop()
        for service in services:
            service.stop()
