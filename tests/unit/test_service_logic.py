"""The exporter's start-up judgements that need no cluster."""

from __future__ import annotations

from exporter.config import parse_config
from exporter.service import unknown_datacenters

CONFIG = parse_config(
    {
        "cluster": {"contact_points": ["127.0.0.1"]},
        "datacenters": {"write": "us-east", "read": ["ca-central", "eu-west"]},
    }
)


def test_configured_datacenters_all_in_the_cluster_pass() -> None:
    assert unknown_datacenters(CONFIG, {"us-east", "ca-central", "eu-west", "ap-south"}) is None


def test_one_missing_datacenter_is_named_with_the_clusters_own() -> None:
    assert unknown_datacenters(CONFIG, {"us-east", "ca-central", "eu-west-1"}) == (
        "datacenters: 'eu-west' is not a datacenter of this cluster, whose datacenters are "
        "ca-central, eu-west-1, us-east"
    )


def test_several_missing_datacenters_are_all_named() -> None:
    message = unknown_datacenters(CONFIG, {"dc1"})
    assert message is not None
    assert message.startswith(
        "datacenters: 'us-east', 'ca-central', 'eu-west' are not datacenters of this cluster"
    )


def test_no_known_hosts_judges_nothing() -> None:
    assert unknown_datacenters(CONFIG, set()) is None
