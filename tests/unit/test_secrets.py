"""Secrets: non-empty, from an environment variable or a regular file of bounded size, and
never repeated in a message."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.config import ConfigError, UnresolvedSecret, parse_config
from exporter.config.base import MAX_SECRET_BYTES

SECRET = "s3cret-Value-9f8e"


def load(password: Any, *, resolve: bool = True) -> Any:
    data = {
        "cluster": {
            "contact_points": ["127.0.0.1"],
            "auth": {"username": "cqrs_exporter", "password": password},
        },
        "datacenters": {"write": "us-east"},
    }
    return parse_config(data, resolve_secrets=resolve).cluster.auth


def error(password: Any, *, resolve: bool = True) -> str:
    with pytest.raises(ConfigError) as caught:
        load(password, resolve=resolve)
    (line,) = caught.value.errors
    assert SECRET not in line
    return line


def test_a_secret_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_TEST_SECRET", SECRET)
    assert load({"env": "CQRS_TEST_SECRET"}).password.get_secret_value() == SECRET


def test_a_secret_is_read_from_a_file_without_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text(SECRET + "\n")
    assert load({"file": str(path)}).password.get_secret_value() == SECRET
    link = tmp_path / "link"
    link.symlink_to(path)  # a mounted Secret is a chain of symlinks to a regular file
    assert load({"file": str(link)}).password.get_secret_value() == SECRET


def test_an_unresolved_secret_is_only_checked_for_shape() -> None:
    assert isinstance(load({"env": "CQRS_TEST_UNSET"}, resolve=False).password, UnresolvedSecret)
    assert "must name an environment variable" in error({"env": SECRET + "!"}, resolve=False)


def test_an_empty_secret_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_TEST_EMPTY", "")
    assert error({"env": "CQRS_TEST_EMPTY"}) == (
        "cluster.auth.password: environment variable CQRS_TEST_EMPTY is empty"
    )
    path = tmp_path / "empty"
    path.write_text("\n")
    assert error({"file": str(path)}) == f"cluster.auth.password: secret file {path} is empty"


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    line = error({"file": str(fifo)})
    assert time.monotonic() - started < 1
    assert line == f"cluster.auth.password: cannot read secret file {fifo}: not a regular file"


def test_a_large_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    assert error({"file": str(path)}).endswith("larger than 64 KiB")


def test_a_binary_file_is_not_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe" + SECRET.encode())
    assert error({"file": str(path)}).endswith("is not UTF-8 text")


@pytest.mark.parametrize(
    "where",
    [
        {"env": SECRET},
        {"env": f"{SECRET} with spaces"},
        {"env": ["list", SECRET]},
        {"file": 12},
        SECRET,
        {"vault": SECRET},
    ],
)
def test_a_value_in_the_wrong_place_is_never_repeated(where: Any) -> None:
    error(where)


def test_a_secret_pasted_over_the_whole_auth_section_is_not_repeated() -> None:
    data = {
        "cluster": {"contact_points": ["127.0.0.1"], "auth": SECRET},
        "datacenters": {"write": "us-east"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.errors == [
        "cluster.auth: input should be a valid dictionary or instance of AuthConfig, got a str"
    ]
