"""Sharding: Prometheus' hashmod, each read model and query in exactly one shard, replication
in shard 0 only, reachability everywhere, `serve --shard` and its errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import main
from exporter.config import hashmod, parse_config, parse_shard
from exporter.connection import CassandraConnection
from probes.registry import ProbeContext, build_probes, read_model_name, shard_config
from tests.scale_support import scale_config

DATACENTERS = ("us-east", "ca-central", "eu-west")


def base(**extra: Any) -> dict[str, Any]:
    return {
        "cluster": {"contact_points": ["127.0.0.1"]},
        "datacenters": {"write": "us-east", "read": ["ca-central", "eu-west"]},
        **extra,
    }


def test_hashmod_is_prometheus_relabel_hashmod() -> None:
    # The vectors of Prometheus' model/relabel tests (hashmod, modulus 1000).
    assert hashmod("baz", 1000) == 976
    assert hashmod("foo\nbar", 1000) == 734


def _probes(config_dict: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    config = parse_config(config_dict)
    context = ProbeContext(config, CassandraConnection(config))
    probes = build_probes(context)
    models = [n for p in probes if (n := read_model_name(p)) is not None]
    kinds = [p.kind for p in probes]
    queries = [q.name for q in shard_config(config).probes.latency.queries]
    return models, queries, kinds


@pytest.mark.parametrize("count", [2, 3])
def test_shards_cover_every_read_model_and_query_exactly_once(count: int) -> None:
    whole = scale_config(base(), DATACENTERS, models=200, query_count=20)
    models: Counter[str] = Counter()
    queries: Counter[str] = Counter()
    for index in range(count):
        shard = {**whole, "sharding": {"index": index, "count": count}}
        mine, my_queries, kinds = _probes(shard)
        assert mine, f"shard {index}/{count} has no read model"
        models.update(mine)
        queries.update(my_queries)
        assert kinds.count("reachability") == 1
        assert ("replication" in kinds) is (index == 0)
        assert ("replication_backlog" in kinds) is (index == 0)
    assert set(models) == {m["name"] for m in whole["read_models"]}
    assert set(models.values()) == {1}
    assert set(queries) == {q["name"] for q in whole["probes"]["latency"]["queries"]}
    assert set(queries.values()) == {1}


def test_unsharded_runs_everything() -> None:
    whole = scale_config(base(), DATACENTERS, models=12, query_count=3)
    models, queries, kinds = _probes(whole)
    assert len(models) == 12 and len(queries) == 3
    assert "replication" in kinds


def test_a_shards_health_groups_keep_only_its_components() -> None:
    whole = scale_config(base(), DATACENTERS, models=6, query_count=0)
    names = [m["name"] for m in whole["read_models"]]
    whole["health"] = {"groups": {"reads": {"checks": [
        *(f"read_model_sync_lag/{n}" for n in names), "replication_lag/ca-central",
    ]}}}
    for index in range(2):
        config = parse_config({**whole, "sharding": {"index": index, "count": 2}})
        view = shard_config(config)
        members = [str(m) for m in view.health.groups["reads"].checks]
        mine = {m.name for m in view.read_models}
        assert {m.split("/", 1)[1] for m in members if m.startswith("read_model")} == mine
        assert ("replication_lag/ca-central" in members) is (index == 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [("2/2", "index (2) must be below count (2)"), ("a/b", "expected INDEX/COUNT"),
     ("0/0", "count must be at least 1")],
)
def test_parse_shard_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_shard(text)
    assert parse_shard("1/3").index == 1


def test_serve_refuses_a_bad_shard_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base()))
    assert main(["serve", "--config", str(path), "--shard", "3/2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["--shard: index (3) must be below count (2)"]


def test_the_config_refuses_an_index_past_the_count() -> None:
    from exporter.config import ConfigError

    with pytest.raises(ConfigError, match="sharding: index"):
        parse_config(base(sharding={"index": 2, "count": 2}))
