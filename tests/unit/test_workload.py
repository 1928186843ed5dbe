"""The reference CQRS workload: its knobs, its command line and its schema."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter

import pytest

from testbed.workload import Workload
from testbed.workload.faults import Delay, DelayKind, FailureKind, Fate, decide
from testbed.workload.schema import schema_cql, schema_statements


@pytest.mark.parametrize(
    ("text", "kind", "mean"),
    [
        ("2s", DelayKind.FIXED, 2.0),
        ("0", DelayKind.FIXED, 0.0),
        ("500ms", DelayKind.FIXED, 0.5),
        ("uniform:1s..3s", DelayKind.UNIFORM, 2.0),
        ("exp:2s", DelayKind.EXPONENTIAL, 2.0),
        ("normal:2s,500ms", DelayKind.NORMAL, 2.0),
    ],
)
def test_delays_parse_and_sample_around_their_mean(text: str, kind: DelayKind,
                                                   mean: float) -> None:
    delay = Delay.parse(text)
    assert delay.kind is kind and delay.mean == mean
    rng = random.Random(1)
    samples = [delay.sample(rng) for _ in range(4000)]
    assert min(samples) >= 0.0
    assert abs(sum(samples) / len(samples) - mean) <= 0.1
    assert Delay.parse(str(delay)) == delay


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gamma:2s", "unknown delay distribution 'gamma'"),
        ("uniform:3s", "needs a range"),
        ("uniform:3s..1s", "upper end is below the lower"),
        ("2", "invalid duration"),
    ],
)
def test_bad_delays_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Delay.parse(text)


def test_injected_failures_follow_the_rate_and_kind() -> None:
    rng = random.Random(3)
    fates = Counter(decide(rng, 0.1, FailureKind.MIXED) for _ in range(20_000))
    assert 0.09 <= (fates[Fate.DROPPED] + fates[Fate.WRONG]) / 20_000 <= 0.11
    assert 0.4 <= fates[Fate.DROPPED] / (fates[Fate.DROPPED] + fates[Fate.WRONG]) <= 0.6
    assert {decide(rng, 0.5, FailureKind.DROP) for _ in range(100)} == {Fate.OK, Fate.DROPPED}
    assert {decide(rng, 0.0, FailureKind.WRONG) for _ in range(100)} == {Fate.OK}


def test_schema_is_the_seed_order_domain() -> None:
    statements = schema_statements("shop", {"us-east": 3, "eu-west": 3})
    assert statements[0].startswith("CREATE KEYSPACE IF NOT EXISTS shop")
    assert "'us-east': 3, 'eu-west': 3" in statements[0]
    text = schema_cql("shop", {"us-east": 1})
    for table in ("orders_by_id", "orders_by_customer", "orders_by_date", "events",
                  "event_feed", "projection_checkpoints"):
        assert f"shop.{table} (" in text
    assert "PRIMARY KEY ((aggregate_id), event_id)" in text
    with pytest.raises(ValueError, match="keyspace"):
        schema_statements("bad-name", {"us-east": 1})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--delay", "soon"], "error: invalid duration 'soon'"),
        (["--failure-rate", "2"], "error: --failure-rate and --update-share must be"),
        (["--replication", "us-east"], "error: --replication: 'us-east' is not"),
    ],
)
def test_command_line_refuses_bad_options_without_a_traceback(args: list[str],
                                                              message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "testbed", "workload", *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_command_line_prints_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "testbed.workload", "--print-schema", "--keyspace", "demo",
         "--replication", "us-east:1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    assert "CREATE TABLE IF NOT EXISTS demo.events (" in result.stdout


def test_asyncio_is_not_needed_to_build_one() -> None:
    # Building does not connect: tests can hold one before the loop runs.
    workload = Workload(["127.0.0.1"], "us-east", keyspace="never_used")
    assert workload.knobs.rate == 10.0 and not workload.projector_running
    with pytest.raises(RuntimeError, match="not connected"):
        asyncio.run(workload.execute("SELECT now() FROM system.local"))
