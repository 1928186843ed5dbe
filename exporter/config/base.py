"""Reusable validated types for the configuration: strict models, bounded durations and
counts, secrets, ratios, names.

Every duration is at most `MAX_DURATION` and at least `MIN_DURATION`, every count and rate
has a maximum: no value of a valid config overflows a timer or a buffer. A secret is
non-empty, read only from an environment variable or a regular file of at most
`MAX_SECRET_BYTES`, and no message ever repeats its value.
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationInfo,
)


class StrictModel(BaseModel):
    """A frozen model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


MIN_DURATION = 0.001
"""1ms: shorter periods would spin."""
MAX_DURATION = 86_400.0
"""1 day: longer ones are mistakes, and overflow timers."""

MAX_LONG_DURATION = 400 * 86_400.0
"""400 days: the longest objective period (`LongDuration`)."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def _short(value: Any) -> str:
    """`repr(value)`, cut short: a message quotes at most a few dozen characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def parse_duration(value: Any, maximum: float = MAX_DURATION) -> float:
    """Parse `250ms`, `1s`, `1.5s`, `5m`, `1h`, `1m30s`, `30d` into seconds (1ms .. 24h, or
    `maximum`)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f"expected a duration with a unit such as 250ms, 1s or 5m, got {_short(value)}"
        )
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"duration {_short(value)} must be greater than zero")
    parts = _DURATION_PART.findall(text)
    if not text or len(text) > 40 or "".join(n + u for n, u in parts) != text:
        raise ValueError(
            f"invalid duration {_short(value)}: use a number and a unit (ms, s, m, h), e.g. 250ms"
        )
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration {_short(value)} must be greater than zero")
    if not math.isfinite(seconds) or seconds > maximum:
        raise ValueError(
            f"duration {_short(value)} is longer than the maximum, {format_duration(maximum)}"
        )
    if seconds < MIN_DURATION:
        raise ValueError(f"duration {_short(value)} is shorter than the minimum, 1ms")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds the way a user writes them in the config."""
    if seconds < 1 and round(seconds * 1000, 6) == int(round(seconds * 1000, 6)):
        return f"{round(seconds * 1000)}ms"
    if seconds == int(seconds):
        whole = int(seconds)
        if whole % 3600 == 0:
            return f"{whole // 3600}h"
        if whole % 60 == 0:
            return f"{whole // 60}m"
        return f"{whole}s"
    return f"{seconds:g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""Seconds, written in the config as `250ms`, `1s`, `5m`; between 1ms and 24h."""


def _parse_long_duration(value: Any) -> float:
    return parse_duration(value, MAX_LONG_DURATION)


LongDuration = Annotated[
    float,
    BeforeValidator(_parse_long_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A duration of up to 400 days (`30d`, `720h`), for objective periods."""

MAX_COUNT = 1_000_000
"""The largest count any key takes unless its own bound is smaller."""
MAX_RATE = 10_000.0
"""Requests or queries per second: the largest rate any key takes."""

Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
"""A positive whole number of at most a million."""
Rate = Annotated[float, Field(gt=0, le=MAX_RATE, allow_inf_nan=False)]
"""Per second, positive and finite, at most 10,000."""


def parse_ratio(value: Any) -> float:
    """Accept `0.001` or `0.1%`; reject anything outside 0..1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a ratio such as 0.001 or 0.1%, got {_short(value)}")
    if isinstance(value, str):
        text = value.strip()
        try:
            ratio = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(
                f"expected a ratio such as 0.001 or 0.1%, got {_short(value)}"
            ) from None
    elif isinstance(value, int | float):
        ratio = float(value)
    else:
        raise ValueError(f"expected a ratio such as 0.001 or 0.1%, got {_short(value)}")
    if not 0 < ratio < 1:
        raise ValueError(f"must be between 0 and 1 (0% and 100%), got {_short(value)}")
    return ratio


Ratio = Annotated[float, BeforeValidator(parse_ratio)]
"""A fraction in (0, 1), written as `0.001` or `0.1%`."""


CQL_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
"""An unquoted CQL name as Cassandra allows keyspaces and tables (48 characters at most)."""
DATACENTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What a snitch names a datacenter: letters, digits, `_`, `.`, `-`; quoted wherever CQL
names it (a replication map's key is a string literal)."""
ROLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}")
"""A Cassandra role: printed double-quoted by `grants` when not a bare lower-case name."""


def _matching(pattern: re.Pattern[str], what: str, rule: str, *, echo: bool = True) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            # A role sits beside its password: a value pasted in the wrong key is not repeated.
            shown = _short(value) if echo else f"a {len(value)}-character string"
            raise ValueError(f"{shown} is not a valid {what}: {rule}")
        return value

    return AfterValidator(check)


Identifier = Annotated[
    str,
    _matching(
        CQL_IDENTIFIER,
        "CQL name",
        "a letter, then letters, digits or '_', at most 48 characters",
    ),
]
"""A keyspace or table name, unquoted: `[A-Za-z][A-Za-z0-9_]*`, at most 48 characters."""
DatacenterName = Annotated[
    str,
    _matching(
        DATACENTER_NAME,
        "datacenter name",
        "a letter or digit, then letters, digits, '_', '.' or '-', at most 64 characters",
    ),
]
"""A datacenter as the snitch names it."""
RoleName = Annotated[
    str,
    _matching(
        ROLE_NAME,
        "role name",
        "letters, digits, '_', '.', '@' or '-', at most 128 characters",
        echo=False,
    ),
]
"""A Cassandra role name."""


RESOLVE_SECRETS = "resolve_secrets"
"""The validation-context key that says whether secrets are read (default: they are)."""

MAX_SECRET_BYTES = 64 * 1024
"""A secret file larger than this is not a secret (a log, a disk image): refused unread."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class UnresolvedSecret(SecretStr):
    """A well-formed secret reference that was not read (`check-config` without
    `--resolve-secrets`): its source is known, its value is not."""


def read_regular_file(path: Path, limit: int, what: str = "") -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else ValueError (one line).

    Checked with `os.stat` before opening: a FIFO would block, a device never end, and a
    directory not read at all. Opened without following a swap to something else: the
    size is checked again on the open file.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"cannot read {what}{path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "Is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ValueError(f"cannot read {what}{path}: {kind}")
    if info.st_size > limit:
        raise ValueError(f"cannot read {what}{path}: larger than {limit // 1024} KiB")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ValueError(f"cannot read {what}{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError(f"cannot read {what}{path}: not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"cannot read {what}{path}: larger than {limit // 1024} KiB")
    return data


def _resolve_secret(value: Any, info: ValidationInfo) -> Any:
    """Read a secret from `{env: NAME}` or `{file: PATH}`; errors name the source only.

    With the context's `resolve_secrets` false, only the reference's shape is checked, so
    that a config can be validated where its secrets are not (a CI job, a laptop). An env
    name that is not one (a pasted password, most likely) is refused without repeating it.
    """
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        raise ValueError(
            "secrets are not written inline: use {env: VARIABLE} or {file: /path/to/secret}"
        )
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"env", "file"}:
        raise ValueError("expected exactly one of {env: VARIABLE} or {file: /path/to/secret}")
    ((kind, source),) = value.items()
    if kind == "env" and not (isinstance(source, str) and _ENV_NAME.fullmatch(source)):
        raise ValueError(
            "'env' must name an environment variable (letters, digits and '_'), "
            "not hold the secret itself"
        )
    if kind == "file" and not (isinstance(source, str) and source and "\0" not in source):
        raise ValueError("'file' must name a file holding the secret")
    if not (info.context or {}).get(RESOLVE_SECRETS, True):
        return UnresolvedSecret("")
    if kind == "env":
        secret = os.environ.get(source)
        if secret is None:
            raise ValueError(f"environment variable {source} is not set")
        if not secret.strip():
            raise ValueError(f"environment variable {source} is empty")
        return SecretStr(secret)
    data = read_regular_file(Path(source), MAX_SECRET_BYTES, "secret file ")
    try:
        secret = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"secret file {source} is not UTF-8 text") from None
    if not secret.strip():
        raise ValueError(f"secret file {source} is empty")
    return SecretStr(secret)


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]
"""A secret given as `{env: NAME}` or `{file: PATH}`, held as a SecretStr; never empty."""
