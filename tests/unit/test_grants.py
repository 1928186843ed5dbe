"""`cqrs-exporter grants`: the statements, how CQL is read, and that they cover every probe.

The coverage test runs every probe kind against a connection that records each statement
it is given, and fails if one needs a permission the printed grants do not give: a probe
that reads a table neither its kind's `statements` nor its config section declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import Config, parse_config
from exporter.config.read_models import bind_names
from exporter.grants import (
    PASSWORD_PLACEHOLDER,
    Access,
    TableName,
    covers,
    render,
    statement_access,
    statements,
)
from probes.base import ProbeContext
from probes.registry import KINDS, build_probes
from probes.replication.backlog import COLUMNS_QUERY
from tests.support import merge

ROOT = Path(__file__).resolve().parents[2]

CHECKPOINT = {
    "name": "projection",
    "method": "checkpoint",
    "checkpoint": {
        "head_query": "SELECT max(id) FROM shop.events WHERE day = currentDate()",
        "checkpoint_query": "SELECT position FROM shop.checkpoints WHERE projector = 'orders'",
    },
}
AUDIT = {
    "name": "by_customer",
    "method": "audit",
    "audit": {
        "recent_query": "SELECT id, total, WRITETIME(total) AS written_at FROM shop.orders "
        "WHERE created > :since LIMIT :max_rows ALLOW FILTERING",
        "sample_query": "SELECT id, total, WRITETIME(total) AS written_at FROM shop.orders "
        "WHERE token(id) >= :start_token LIMIT :max_rows",
        "lookup_query": "SELECT total, WRITETIME(total) AS written_at FROM shop.by_customer "
        "WHERE id = :id",
        "compare": ["total"],
    },
}
SENTINEL = {
    "name": "by_status",
    "method": "sentinel",
    "interval": "1s",
    "timeout": "800ms",
    "sentinel": {
        "write": [
            "BEGIN BATCH INSERT INTO shop.events (day, id, kind) VALUES (:sentinel_date, "
            ":sentinel_id, 'OrderCreated'); UPDATE shop.\"Status\" SET tag = :sentinel_tag "
            "WHERE id = :sentinel_id IF EXISTS; APPLY BATCH",
        ],
        "read": "SELECT tag FROM shop.\"Status\" WHERE id = :sentinel_id",
        "match": {"tag": "sentinel_tag"},
    },
}
EVERYTHING: dict[str, Any] = {
    "cluster": {
        "contact_points": ["127.0.0.1"],
        "auth": {"username": "cqrs_exporter", "password": {"env": "NEVER_SET_IN_TESTS"}},
    },
    "datacenters": {"write": "us-east", "read": ["eu-west"]},
    "monitoring": {"keyspace": "Mon"},
    "probes": {
        "reachability": {"interval": "1s", "timeout": "500ms"},
        "replication": {"backlog": {"interval": "1s", "timeout": "500ms"}},
        "latency": {
            "rate": 50,
            "queries": [
                {
                    "name": "by_customer",
                    "cql": "SELECT total FROM shop.by_customer WHERE id = ?",
                    "key_query": "SELECT DISTINCT id FROM shop.key_source LIMIT 10",
                }
            ],
            "server": {"interval": "1s", "timeout": "500ms"},
        },
    },
    "read_models": [CHECKPOINT, AUDIT, SENTINEL],
}
REGIONAL = merge(
    EVERYTHING,
    {"datacenters": {"local": "eu-west"}, "probes": {"replication": {"mode": "regional"}}},
)


def config_of(data: dict[str, Any]) -> Config:
    return parse_config(data, resolve_secrets=False)


Host = namedtuple("Host", "address datacenter is_up")
Column = namedtuple("Column", "name")
VirtualColumn = namedtuple("VirtualColumn", "table_name column_name")


@dataclass
class Prepared:
    query_string: str
    column_metadata: list[Any]


class RecordingConnection:
    """Answers every request (with no rows, but for the virtual tables' schema) and keeps
    the text of each statement it is asked to prepare or run."""

    connected = True

    def __init__(self, config: Config) -> None:
        self.datacenters = config.datacenters.all
        self.seen: list[str] = []

    def hosts(self, datacenter: str) -> list[Host]:
        return [Host(f"10.0.{self.datacenters.index(datacenter)}.1", datacenter, True)]

    def cluster_datacenters(self) -> set[str]:
        return set(self.datacenters)

    async def prepare(self, query: str) -> Prepared:
        self.seen.append(query)
        names = sorted(bind_names(query), key=query.index) if "?" not in query else []
        return Prepared(query, [Column(n) for n in names])

    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> list[Any]:
        text = query.query_string if isinstance(query, Prepared) else str(query)
        self.seen.append(text)
        await asyncio.sleep(0)
        if text == COLUMNS_QUERY:
            return [
                VirtualColumn(table, column)
                for table, columns in {
                    "pending_hints": ("dc", "files"),
                    "internode_outbound": ("dc", "pending_count", "pending_bytes"),
                }.items()
                for column in columns
            ]
        return []

    async def timed(self, query: Any, *args: Any, **kwargs: Any) -> float:
        await self.execute(query, *args, **kwargs)
        return asyncio.get_running_loop().time()

    def drain_answers(self) -> None:
        pass


async def statements_run(config: Config) -> tuple[list[str], set[str]]:
    """Every statement the config's probes send in a few runs, and the kinds that ran."""
    connection = RecordingConnection(config)
    probes = build_probes(ProbeContext(config, connection))  # type: ignore[arg-type]
    for probe in probes:
        await probe.start()
    for _ in range(3):
        for probe in probes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probe.run(), timeout=2.0)
        await asyncio.sleep(0.2)  # the background loops (pollers, fixed-rate timing) run
    for probe in probes:
        await probe.stop()
    return connection.seen, {p.kind for p in probes}


@pytest.mark.parametrize("data", [EVERYTHING, REGIONAL], ids=["writer", "regional"])
@pytest.mark.parametrize("create_schema", [False, True], ids=["tables", "create_schema"])
async def test_the_grants_cover_every_statement_every_probe_sends(
    data: dict[str, Any], create_schema: bool
) -> None:
    config = config_of(merge(data, {"monitoring": {"create_schema": create_schema}}))
    seen, kinds = await statements_run(config)
    assert kinds == set(KINDS), "enable every probe kind in EVERYTHING"
    needed = {access: text for text in seen for access in statement_access(text)}
    missing = [f"{a.permission} on {a.table}: {text}" for a, text in needed.items()
               if not covers(config, a)]
    assert not missing, "\n".join(missing)
    tables = {str(a.table) for a in needed}
    # The recording reached the code's own reads and each kind of declared CQL.
    assert {"system.local", "system_views.pending_hints", "system_views.internode_outbound",
            "system_views.coordinator_read_latency", "mon.replication_sentinels",
            "mon.command_probe", "shop.key_source", "shop.events", "shop.checkpoints",
            "shop.orders", 'shop."Status"'} <= tables


def test_every_declared_statement_names_a_table() -> None:
    for name, kind in KINDS.items():
        for cql in kind.statements:
            assert statement_access(cql), f"{name}: no table in {cql!r}"


@pytest.mark.parametrize(
    ("cql", "expected"),
    [
        ("SELECT a FROM ks.t WHERE b = 'FROM x.y'", [("SELECT", "ks", "t")]),
        ("select a from KS.\"MixedCase\"", [("SELECT", "ks", "MixedCase")]),
        ("INSERT INTO ks.t (a) VALUES (:a) IF NOT EXISTS",
         [("MODIFY", "ks", "t"), ("SELECT", "ks", "t")]),
        ("UPDATE ks.t USING TTL 10 SET a = 1 WHERE k = 2", [("MODIFY", "ks", "t")]),
        ("DELETE a FROM ks.t WHERE k = 1 IF a = 2",
         [("MODIFY", "ks", "t"), ("SELECT", "ks", "t")]),
        ("BEGIN UNLOGGED BATCH INSERT INTO a.x (k) VALUES (1); -- a comment FROM b.c\n"
         "DELETE FROM a.y WHERE k = 1; APPLY BATCH",
         [("MODIFY", "a", "x"), ("MODIFY", "a", "y")]),
        ("SELECT v FROM t", [("SELECT", None, "t")]),
    ],
)
def test_statement_access(cql: str, expected: list[tuple[str, str | None, str]]) -> None:
    assert statement_access(cql) == [Access(p, TableName(k, t)) for p, k, t in expected]


def test_statements_for_a_config_that_checks_its_schema() -> None:
    config = config_of(EVERYTHING)
    printed = statements(config)
    assert printed[0] == (
        "CREATE ROLE IF NOT EXISTS cqrs_exporter WITH LOGIN = true AND PASSWORD = "
        f"'{PASSWORD_PLACEHOLDER}'"
    )
    assert {
        "GRANT SELECT ON TABLE mon.replication_sentinels TO cqrs_exporter",
        "GRANT MODIFY ON TABLE mon.command_probe TO cqrs_exporter",
        "GRANT SELECT ON TABLE system_views.pending_hints TO cqrs_exporter",
        "GRANT SELECT ON TABLE system_views.coordinator_write_latency TO cqrs_exporter",
        "GRANT SELECT ON TABLE shop.events TO cqrs_exporter",
        "GRANT MODIFY ON TABLE shop.events TO cqrs_exporter",
        'GRANT SELECT ON TABLE shop."Status" TO cqrs_exporter',
        'GRANT MODIFY ON TABLE shop."Status" TO cqrs_exporter',
    } <= set(printed)
    assert len(printed) == len(set(printed)), "each grant once"
    assert not any("KEYSPACE" in s or "system.local" in s for s in printed)
    # Least privilege: only what is read is readable, only what is written writable.
    assert "GRANT MODIFY ON TABLE shop.orders TO cqrs_exporter" not in printed
    assert "GRANT MODIFY ON TABLE shop.checkpoints TO cqrs_exporter" not in printed


def test_with_create_schema_the_keyspace_is_created_and_granted_whole() -> None:
    config = config_of(merge(EVERYTHING, {"monitoring": {"create_schema": True}}))
    printed = statements(config)
    assert printed[1].startswith("CREATE KEYSPACE IF NOT EXISTS mon WITH replication")
    assert printed[2:6] == [
        f"GRANT {p} ON KEYSPACE mon TO cqrs_exporter" for p in ("CREATE", "ALTER", "SELECT",
                                                                 "MODIFY")
    ]
    assert not any("ON TABLE mon." in s for s in printed)
    assert "ALL KEYSPACES" not in " ".join(printed)


def test_a_role_name_that_needs_quotes_is_quoted() -> None:
    config = config_of(merge(EVERYTHING, {"cluster": {"auth": {"username": "Cqrs-Exporter"}}}))
    assert all(s.endswith('TO "Cqrs-Exporter"') for s in statements(config)[1:])


def test_the_output_names_what_needs_each_grant_and_what_needs_none() -> None:
    text = render(config_of(merge(EVERYTHING, {"read_models": [
        *EVERYTHING["read_models"],
        {"name": "bare", "method": "checkpoint",
         "checkpoint": {"head_query": "SELECT max(id) FROM events",
                        "checkpoint_query": "SELECT position FROM shop.checkpoints"}},
    ]})), "config.yaml")
    assert "-- read_model by_customer: audit.recent_query, audit.sample_query, " in text
    assert "-- readable by every role, nothing to grant: system.local (reachability), " in text
    assert "checkpoint.head_query names table events without its keyspace" in text
    executable = [line for line in text.splitlines() if line and not line.startswith("--")]
    assert all(line.endswith(";") for line in executable)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60,
        cwd=ROOT,
    )


def test_the_command_reads_no_secret_and_prints_no_password(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    data = merge(EVERYTHING, {})
    data["cluster"]["auth"]["password"] = {"file": "/nonexistent"}
    path.write_text(yaml.safe_dump(data))
    result = run_cli("grants", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == render(config_of(data), str(path))
    assert PASSWORD_PLACEHOLDER in result.stdout


def test_the_command_needs_cluster_auth(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in EVERYTHING.items() if k != "cluster"}
                                   | {"cluster": {"contact_points": ["127.0.0.1"]}}))
    result = run_cli("grants", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"{path}: cluster.auth is not set: the grants are for the role it names\n"
    )
