"""Every bench under bench/ imports: a bench is run by hand, so nothing else would notice
one that a change elsewhere broke before someone needs its figures."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHES = sorted(
    path.stem for path in (Path(__file__).parents[2] / "bench").glob("*.py")
    if path.stem != "__init__"
)


def test_there_are_benches() -> None:
    assert {"soak", "scale", "replication_health", "driver_floor"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_the_bench_imports(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench/{name}.py says what it measures and how to run it"


def test_the_soak_names_the_object_types_that_grew_most() -> None:
    from bench.soak import type_growth

    first = {"dict": 100, "list": 50, "Task": 12, "gone": 3}
    last = {"dict": 130, "list": 50, "Task": 11, "new": 7}
    assert type_growth(first, last, top=3) == {"dict": 30, "new": 7, "gone": -3}
