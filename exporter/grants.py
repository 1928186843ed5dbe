"""The role and grants a config needs, least privilege: `cqrs-exporter grants`.

Derived, never listed by hand: the monitoring tables are the probe kinds' tables
(`probes.registry.tables()`); the rest is read from CQL, parsed here: the statements each
kind declares it runs on tables not its own (`Kind.statements`: Cassandra's system
tables), and every statement in the enabled sections of the config (read models, latency
queries). A kind's probe that ran CQL neither declares is caught by tests/unit/test_grants.py.
Secrets are never read: the password is a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from exporter.config import Config
from exporter.config.cql import quote_name
from exporter.schema import keyspace_cql
from probes import registry

PASSWORD_PLACEHOLDER = "<the password cluster.auth.password names>"

ALWAYS_READABLE = ("system.local", "system.peers", "system.peers_v2", "system_schema.*",
                   "system_virtual_schema.*")
"""What Cassandra lets every role read: the driver's discovery, the schema, the virtual
tables' own schema. Nothing is granted for these."""

_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\$\$.*?\$\$|\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_]*|--[^\n]*|//[^\n]*"
    r"|/\*.*?\*/|\S",
    re.DOTALL,
)
_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|BEGIN)\b", re.IGNORECASE)
_NAMES_TABLE = {("FROM", "SELECT"), ("FROM", "DELETE"), ("INTO", "INSERT")}
"""(keyword, statement): the keyword before the table's name in that statement."""


@dataclass(frozen=True, order=True)
class TableName:
    """A table as Cassandra stores its name: unquoted names lower-cased, quoted ones kept."""

    keyspace: str | None
    table: str

    def __str__(self) -> str:
        if self.keyspace is None:
            return quote(self.table)
        return f"{quote(self.keyspace)}.{quote(self.table)}"


@dataclass(frozen=True, order=True)
class Access:
    """One permission on one table that a statement needs."""

    permission: str
    """SELECT or MODIFY."""
    table: TableName


def quote(name: str) -> str:
    """A name as CQL must write it: bare when lower-case, else double-quoted."""
    return quote_name(name)


def _name(token: str) -> str:
    if token.startswith('"'):
        return token[1:-1].replace('""', '"')
    return token.lower()


def _tokens(cql: str) -> list[str]:
    return [
        t for t in _TOKEN.findall(cql)
        if not t.startswith(("--", "//", "/*", "'", "$$"))
    ]


def _table_at(tokens: list[str], index: int) -> TableName | None:
    if index >= len(tokens) or not (tokens[index][0].isalpha() or tokens[index][0] in '_"'):
        return None
    if index + 2 < len(tokens) and tokens[index + 1] == ".":
        return TableName(_name(tokens[index]), _name(tokens[index + 2]))
    return TableName(None, _name(tokens[index]))


def statement_access(cql: str) -> list[Access]:
    """The permissions a statement (or a BATCH of them) needs, table by table.

    SELECT reads (SELECT); INSERT, UPDATE and DELETE write (MODIFY), and a conditional one
    (IF ...) also reads, as Cassandra checks for lightweight transactions.
    """
    tokens = _tokens(cql)
    found: list[Access] = []
    verb: str | None = None
    target: TableName | None = None
    for index, token in enumerate(tokens):
        word = token.upper()
        table: TableName | None = None
        if word in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            verb, target = word, None
            if word == "UPDATE":
                table = _table_at(tokens, index + 1)
        elif target is None and (word, verb) in _NAMES_TABLE:
            table = _table_at(tokens, index + 1)
        elif word == "IF" and verb != "SELECT" and target is not None:
            found.append(Access("SELECT", target))
        if table is not None and verb is not None:
            target = table
            found.append(Access("SELECT" if verb == "SELECT" else "MODIFY", table))
    return list(dict.fromkeys(found))


def always_readable(table: TableName) -> bool:
    return f"{table.keyspace}.{table.table}" in ALWAYS_READABLE or (
        f"{table.keyspace}.*" in ALWAYS_READABLE
    )


def declared_cql(section: BaseModel, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, statement) for every CQL statement in a config section, however nested."""
    for field in type(section).model_fields:
        yield from _cql_in(getattr(section, field), f"{path}{field}")


def _cql_in(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        yield from declared_cql(value, f"{where}.")
    elif isinstance(value, str) and _STATEMENT.match(value):
        yield where, value
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _cql_in(item, f"{where}[{index}]")


@dataclass
class Group:
    """Grants with what needs them: a comment line, then the statements."""

    title: str
    statements: list[str]


def _grant(permission: str, resource: str, role: str) -> str:
    return f"GRANT {permission} ON {resource} TO {role}"


def _monitoring(config: Config, role: str) -> list[Group]:
    keyspace = config.monitoring.keyspace
    ks = quote(keyspace.lower())
    if config.monitoring.create_schema:
        return [Group(
            f"The monitoring keyspace {keyspace}: monitoring.create_schema is true, so the "
            "exporter creates the tables it lacks and adds missing columns (ALTER); the "
            "keyspace is created here, as creating one takes CREATE on ALL KEYSPACES",
            [keyspace_cql(config), *(
                _grant(p, f"KEYSPACE {ks}", role) for p in ("CREATE", "ALTER", "SELECT", "MODIFY")
            )],
        )]
    return [Group(
        f"The monitoring keyspace {keyspace}: the probes' own tables (create them first, "
        "with `cqrs-exporter schema`: a grant names an existing table)",
        [
            _grant(p, f"TABLE {ks}.{quote(t.name)}", role)
            for t in registry.tables() for p in ("SELECT", "MODIFY")
        ],
    )]


def _label(kind: str, section: Any) -> str:
    name = getattr(section, "name", None)
    return f"{kind} {name}" if name else kind


def plan(config: Config) -> tuple[list[Group], list[str]]:
    """The grants a config needs, grouped by what needs them, and notes (comments) on what
    needs nothing or cannot be granted from here."""
    if config.cluster.auth is None:
        raise ValueError("cluster.auth is not set: the grants are for the role it names")
    role = quote(config.cluster.auth.username)
    groups = _monitoring(config, role)
    monitoring = config.monitoring.keyspace.lower()
    seen: set[str] = {s for g in groups for s in g.statements}
    readable: dict[str, list[str]] = {}
    notes: list[str] = []
    for kind_name, kind in registry.KINDS.items():
        for section in kind.enabled(config):
            label = _label(kind_name, section)
            sources = [("the probe's own CQL", s) for s in kind.statements]
            sources += list(declared_cql(section))
            statements: list[str] = []
            needs: list[str] = []
            for where, cql in sources:
                for access in statement_access(cql):
                    if access.table.keyspace == monitoring:
                        continue  # granted with the keyspace's own tables
                    if access.table.keyspace is None:
                        notes.append(
                            f"{label}: {where} names table {access.table} without its "
                            "keyspace; the exporter's session has none, so name it"
                        )
                        continue
                    if access.permission == "SELECT" and always_readable(access.table):
                        readable.setdefault(str(access.table), []).append(kind_name)
                        continue
                    needs.append(where)
                    grant = _grant(access.permission, f"TABLE {access.table}", role)
                    if grant not in seen:
                        seen.add(grant)
                        statements.append(grant)
            if needs:
                title = f"{label}: {', '.join(dict.fromkeys(needs))}"
                groups.append(Group(title if statements else f"{title}: granted above", statements))
    if readable:
        listed = ", ".join(
            f"{table} ({', '.join(dict.fromkeys(kinds))})" for table, kinds in readable.items()
        )
        notes.append(f"readable by every role, nothing to grant: {listed}")
    return groups, notes


def role_cql(config: Config) -> str:
    assert config.cluster.auth is not None
    return (
        f"CREATE ROLE IF NOT EXISTS {quote(config.cluster.auth.username)} WITH LOGIN = true "
        f"AND PASSWORD = '{PASSWORD_PLACEHOLDER}'"
    )


def statements(config: Config) -> list[str]:
    """Every statement, in order, without comments: the role, then its grants."""
    groups, _ = plan(config)
    return [role_cql(config), *(s for g in groups for s in g.statements)]


def covers(config: Config, access: Access) -> bool:
    """Whether the printed grants (or Cassandra's defaults) allow `access`."""
    if access.permission == "SELECT" and always_readable(access.table):
        return True
    assert config.cluster.auth is not None
    role = quote(config.cluster.auth.username)
    granted = set(statements(config))
    keyspace = quote(access.table.keyspace or "")
    return bool(
        {
            _grant(access.permission, f"TABLE {access.table}", role),
            _grant(access.permission, f"KEYSPACE {keyspace}", role),
        }
        & granted
    )


def render(config: Config, source: str) -> str:
    """What `cqrs-exporter grants` prints: statements with `--` comment lines, for cqlsh."""
    groups, notes = plan(config)
    lines = [
        f"-- The role `cqrs-exporter serve` logs in as with {source}, and the least it needs.",
        "-- Run as a superuser (cqlsh -f); put the role's real password in the first statement.",
        f"{role_cql(config)};",
    ]
    for group in groups:
        lines += ["", f"-- {group.title}", *(f"{s};" for s in group.statements)]
    if notes:
        lines += ["", *(f"-- {note}" for note in notes)]
    return "\n".join(lines) + "\n"
