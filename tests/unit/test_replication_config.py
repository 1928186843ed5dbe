"""The replication section of the config: defaults, and one clear error per bad value."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.config import ConfigError, parse_config
from exporter.config.replication import ReadMode, ReplicationMode
from probes.registry import KINDS, ProbeContext, build_probes
from probes.replication import replication_probe
from probes.replication.backlog import ReplicationBacklogProbe
from probes.replication.heartbeat import HeartbeatProbe
from probes.replication.writer import WriterProbe
from tests.support import merge

BASE: dict[str, Any] = {
    "cluster": {"contact_points": ["127.0.0.1"]},
    "datacenters": {"write": "us-east", "read": ["ca-central", "eu-west"]},
}


def config(overrides: dict[str, Any] | None = None) -> Any:
    return parse_config(merge(BASE, overrides or {}))


def test_defaults_follow_the_issue() -> None:
    replication = config().probes.replication
    assert replication.interval == 0.1
    assert replication.timeout == 1.0  # a round may outlast the interval (the next skipped)
    assert replication.poll_interval == 0.05
    assert replication.mode is ReplicationMode.WRITER
    assert replication.read_mode is ReadMode.LOCAL_ONE
    assert replication.sentinel_timeout == 30.0
    backlog = replication.backlog
    assert backlog.enabled and backlog.timeout < backlog.interval


def test_a_sentinel_round_may_outlast_its_interval() -> None:
    replication = config({"probes": {"replication": {"timeout": "2s"}}}).probes.replication
    assert (replication.interval, replication.timeout) == (0.1, 2.0)


@pytest.mark.parametrize(
    ("replication", "datacenters", "expected"),
    [
        (
            {"backlog": {"interval": "5s", "timeout": "5s"}},
            {},
            "probes.replication.backlog: timeout (5s) must be shorter than interval (5s)",
        ),
        (
            {"interval": "1s", "poll_interval": "1s"},
            {},
            "probes.replication: poll_interval (1s) must be shorter than interval (1s)",
        ),
        (
            {"sentinel_timeout": "500ms", "interval": "1s"},
            {},
            "probes.replication: sentinel_timeout (500ms) must be longer than interval (1s)",
        ),
        (
            {"read_timeout": "40s"},
            {},
            "probes.replication: read_timeout (40s) must be shorter than sentinel_timeout (30s)",
        ),
        (
            {"mode": "reader"},
            {},
            "probes.replication.mode: input should be 'writer' or 'regional'",
        ),
        (
            {"mode": "regional"},
            {},
            "probes: replication.mode is regional, so datacenters.local must name the read "
            "datacenter this exporter runs in",
        ),
        (
            {"mode": "regional"},
            {"local": "us-east"},
            "probes: replication.mode is regional, so datacenters.local must name the read "
            "datacenter this exporter runs in",
        ),
        (
            {"backlog": {"interval": "5s", "timeout": "5s"}},
            {},
            "probes.replication.backlog: timeout (5s) must be shorter than interval (5s)",
        ),
        (
            {"read_mode": "sometimes"},
            {},
            "probes.replication.read_mode: input should be 'local_one' or 'per_replica'",
        ),
        (
            {"per_replica": True},
            {},
            "probes.replication: per_replica is now read_mode: per_replica (or local_one, "
            "the default)",
        ),
    ],
)
def test_bad_replication_settings_name_the_key(
    replication: dict[str, Any], datacenters: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config({"probes": {"replication": replication}, "datacenters": datacenters})
    assert caught.value.errors == [expected]


def test_registry_knows_both_replication_probes() -> None:
    assert KINDS["replication"].factory is replication_probe
    assert KINDS["replication_backlog"].factory is ReplicationBacklogProbe


def _built(overrides: dict[str, Any]) -> list[Any]:
    cfg = config(overrides)
    return build_probes(ProbeContext(cfg, connection=None))  # type: ignore[arg-type]


def test_writer_mode_builds_the_sentinel_probe_and_the_backlog_probe() -> None:
    kinds = {type(p) for p in _built({})}
    assert {WriterProbe, ReplicationBacklogProbe} <= kinds
    assert HeartbeatProbe not in kinds


def test_regional_mode_builds_the_heartbeat_reader_for_the_local_datacenter() -> None:
    probes = _built(
        {"probes": {"replication": {"mode": "regional"}}, "datacenters": {"local": "eu-west"}}
    )
    (heartbeat,) = [p for p in probes if isinstance(p, HeartbeatProbe)]
    assert heartbeat.name == "replication" and heartbeat.local == "eu-west"
    (backlog,) = [p for p in probes if isinstance(p, ReplicationBacklogProbe)]
    assert backlog.sources == ("eu-west",)


def test_disabled_replication_builds_nothing() -> None:
    probes = _built({"probes": {"replication": {"enabled": False}}})
    assert not [p for p in probes if p.kind.startswith("replication")]
