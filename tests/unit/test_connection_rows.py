"""Rows as named tuples: named as the driver names them, one row class per set of columns."""

from __future__ import annotations

from cassandra.query import named_tuple_factory

from exporter.connection import row_factory

COLUMNS = ["id", "Order Id", "_x", "count(*)", "writetime(v)", "1a", "a", "a"]


def test_rows_are_named_as_the_driver_names_them() -> None:
    values = [tuple(range(len(COLUMNS)))]
    ours, drivers = row_factory(COLUMNS, values)[0], named_tuple_factory(COLUMNS, values)[0]
    assert ours._fields == drivers._fields
    assert tuple(ours) == tuple(drivers)
    assert ours.Order_Id == 1 and ours.count == 3


def test_answers_with_the_same_columns_share_one_row_class() -> None:
    first = row_factory(["sentinel_id", "written_at"], [(1, 2.0)])
    second = row_factory(["sentinel_id", "written_at"], [(3, 4.0), (5, 6.0)])
    other = row_factory(["sentinel_id", "seen_at"], [(7, 8.0)])
    assert type(first[0]) is type(second[0]) is type(second[1])
    assert type(other[0]) is not type(first[0])
    assert [row.written_at for row in second] == [4.0, 6.0]
    assert row_factory(["sentinel_id"], []) == []
