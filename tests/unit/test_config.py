"""The configuration: strict schema, typed durations, secrets, and one error line per problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, parse_config
from exporter.config.base import format_duration, parse_duration

BAD_CONFIGS = sorted((Path(__file__).parent / "bad_configs").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]


def expected_errors(path: Path) -> list[str]:
    return [
        line.removeprefix("# expect: ").rstrip("\n")
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


def test_there_are_at_least_ten_bad_configs() -> None:
    assert len(BAD_CONFIGS) >= 10


@pytest.mark.parametrize("path", BAD_CONFIGS, ids=lambda p: p.stem)
def test_bad_config_is_rejected_with_the_exact_message(path: Path) -> None:
    expected = expected_errors(path)
    assert expected, f"{path.name} declares no '# expect:' line"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert sorted(caught.value.errors) == sorted(expected)


@pytest.mark.parametrize("path", BAD_CONFIGS[:3], ids=lambda p: p.stem)
def test_check_config_prints_errors_and_exits_2_without_traceback(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for line in expected_errors(path):
        assert line in result.stderr.splitlines()


def test_serve_refuses_a_bad_config_the_same_way() -> None:
    path = Path(__file__).parent / "bad_configs" / "write_dc_as_read.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected_errors(path)[0] in result.stderr


def test_check_config_validates_secret_references_without_reading_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CI job can validate a config whose secrets it does not hold; `serve` reads them."""
    path = Path(__file__).parent / "bad_configs" / "missing_secret_variable.yaml"
    monkeypatch.delenv("CQRS_TEST_UNSET_PASSWORD", raising=False)
    unread = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unread.returncode == 0, unread.stderr
    assert "secrets not read (--resolve-secrets)" in unread.stdout
    read = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", "--resolve-secrets", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert read.returncode == 2
    assert expected_errors(path)[0] in read.stderr.splitlines()
    served = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 2
    assert expected_errors(path)[0] in served.stderr.splitlines()


def test_a_secret_reference_is_still_checked_when_not_read(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "cluster:\n  contact_points: [127.0.0.1]\n  auth:\n    username: monitor\n"
        "    password: hunter2\ndatacenters:\n  write: us-east\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, resolve_secrets=False)
    assert caught.value.errors == [
        "cluster.auth.password: secrets are not written inline: use {env: VARIABLE} or "
        "{file: /path/to/secret}"
    ]
    assert "hunter2" not in str(caught.value.errors)


def test_missing_config_file_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", "/nonexistent/cqrs.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "(file): cannot read /nonexistent/cqrs.yaml: No such file or directory" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("1s", 1.0), ("1.5s", 1.5), ("5m", 300.0), ("1h", 3600.0), ("1m30s", 90.0)],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("seconds", [0.05, 0.25, 1.0, 1.5, 90.0, 300.0, 3600.0])
def test_durations_round_trip_through_their_written_form(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def minimal(**extra: object) -> dict[str, object]:
    return {
        "cluster": {"contact_points": ["127.0.0.1"]},
        "datacenters": {"write": "us-east"},
        **extra,
    }


def test_defaults_are_the_documented_thresholds() -> None:
    thresholds = parse_config(minimal()).thresholds
    assert thresholds.replication_lag == 1.0
    assert thresholds.read_model_sync_lag == 5.0
    assert thresholds.query_latency_p99 == pytest.approx(0.050)
    assert thresholds.command_latency_p99 == pytest.approx(0.100)
    assert thresholds.sync_failure_rate == pytest.approx(0.001)


def test_default_consistency_levels_follow_the_pattern() -> None:
    config = parse_config(minimal())
    assert config.consistency.command.value == "LOCAL_QUORUM"
    assert config.consistency.query.value == "LOCAL_ONE"


def test_failure_rate_accepts_a_percentage() -> None:
    config = parse_config(minimal(thresholds={"sync_failure_rate": "0.5%"}))
    assert config.thresholds.sync_failure_rate == pytest.approx(0.005)


def test_config_is_frozen() -> None:
    config = parse_config(minimal())
    with pytest.raises(ValueError):
        config.thresholds.replication_lag = 2.0  # type: ignore[misc]


def test_secret_from_env_is_held_but_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_TEST_PASSWORD", "s3cr3t-value")
    config = parse_config(
        minimal(
            cluster={
                "contact_points": ["a"],
                "auth": {"username": "u", "password": {"env": "CQRS_TEST_PASSWORD"}},
            }
        )
    )
    assert config.cluster.auth is not None
    assert config.cluster.auth.password.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(config)
    assert "s3cr3t-value" not in str(config.model_dump())


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    config = parse_config(
        minimal(
            cluster={
                "contact_points": ["a"],
                "auth": {"username": "u", "password": {"file": str(secret)}},
            }
        )
    )
    assert config.cluster.auth is not None
    assert config.cluster.auth.password.get_secret_value() == "from-a-file"


def test_unreadable_secret_file_names_the_file_not_a_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            minimal(
                cluster={
                    "contact_points": ["a"],
                    "auth": {"username": "u", "password": {"file": str(tmp_path / "nope")}},
                }
            )
        )
    assert caught.value.errors == [
        f"cluster.auth.password: cannot read secret file {tmp_path / 'nope'}: "
        "No such file or directory"
    ]


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "cluster": {"contact_points": [], "port": 0},
                "datacenters": {"write": "x"},
                "bogus": 1,
            }
        )
    assert len(caught.value.errors) == 3


@pytest.mark.parametrize("path", sorted(REPO.glob("config*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_CASSANDRA_PASSWORD", "example")
    load_config(path)


def test_the_example_shows_every_section(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from exporter.config import Config, ProbesConfig

    monkeypatch.setenv("CQRS_CASSANDRA_PASSWORD", "example")
    data = yaml.safe_load((REPO / "config.example.yaml").read_text())
    assert set(data) == set(Config.model_fields)
    assert set(ProbesConfig.model_fields) <= set(data["probes"])
    config = load_config(REPO / "config.example.yaml")
    assert {m.method.value for m in config.read_models} >= {"checkpoint", "audit"}
