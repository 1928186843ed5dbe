"""Reading what the declared CQL returns: positions in time, write times, columns, binds."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from cassandra.query import PreparedStatement

_UUID_EPOCH = 0x01B21DD213814000
"""100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch."""


class DeclaredCqlError(Exception):
    """The declared CQL returned something the method cannot use; the message says what."""


def position_seconds(value: Any) -> float:
    """Unix seconds of a position: a TIMEUUID, a timestamp, or a WRITETIME (microseconds)."""
    if isinstance(value, uuid.UUID):
        if value.version != 1:
            raise DeclaredCqlError(
                f"a position UUID must be a TIMEUUID (version 1), got v{value.version}"
            )
        return (value.time - _UUID_EPOCH) / 1e7
    if isinstance(value, datetime):
        # The driver returns timestamps as naive datetimes in UTC.
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 1e6
    if isinstance(value, date):
        raise DeclaredCqlError(
            "a position must be a TIMEUUID, a timestamp or a WRITETIME, not a date"
        )
    raise DeclaredCqlError(
        f"a position must be a TIMEUUID, a timestamp or a WRITETIME, got {type(value).__name__}"
    )


def first_value(rows: list[Any]) -> Any:
    """The first column of the first row, or None when there is no row."""
    if not rows:
        return None
    return rows[0][0]


def as_dict(row: Any) -> dict[str, Any]:
    """A driver row (named tuple) as {column: value}."""
    return dict(row._asdict()) if hasattr(row, "_asdict") else dict(row)


def bind_names(statement: PreparedStatement) -> list[str]:
    """The bind markers of a prepared statement, by name, in order."""
    return [column.name for column in statement.column_metadata]


def bind(statement: PreparedStatement, values: dict[str, Any], what: str) -> dict[str, Any]:
    """The values a statement binds, taken by name; names it lacks are a clear error."""
    names = bind_names(statement)
    missing = [name for name in names if name not in values]
    if missing:
        raise DeclaredCqlError(
            f"{what} binds {', '.join(':' + n for n in missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not available "
            f"(available: {', '.join(sorted(values)) or 'none'})"
        )
    return {name: values[name] for name in names}
