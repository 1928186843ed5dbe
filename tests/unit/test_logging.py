"""Log records as JSON carry their exception (type, message, traceback) as fields."""

from __future__ import annotations

import json
import logging
import sys

from exporter import cli, serving
from exporter.cli import _JsonFormatter


def record(exc_info: bool) -> logging.LogRecord:
    try:
        raise KeyError("the-key")
    except KeyError:
        info = sys.exc_info() if exc_info else None
    return logging.LogRecord("exporter.x", logging.ERROR, __file__, 1, "failed: %s", ("why",), info)


def test_an_exception_is_logged_with_its_type_message_and_traceback() -> None:
    entry = json.loads(_JsonFormatter().format(record(exc_info=True)))
    assert entry["message"] == "failed: why"
    assert entry["level"] == "ERROR" and entry["logger"] == "exporter.x"
    assert entry["exc_type"] == "KeyError"
    assert entry["exc_message"] == "'the-key'"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].rstrip().endswith("KeyError: 'the-key'")


def test_a_record_without_an_exception_has_no_exception_fields() -> None:
    entry = json.loads(_JsonFormatter().format(record(exc_info=False)))
    assert set(entry) == {"time", "level", "logger", "message"}


def test_a_stack_is_a_field_too() -> None:
    plain = record(exc_info=False)
    plain.stack_info = "Stack (most recent call last):\n  File x"
    assert "stack_info" in json.loads(_JsonFormatter().format(plain))


def test_the_command_exits_with_the_codes_serve_uses() -> None:
    assert (cli.EXIT_OK, cli.EXIT_RUNTIME, cli.EXIT_CONFIG) == (
        serving.EXIT_OK, serving.EXIT_RUNTIME, serving.EXIT_CONFIG
    )
