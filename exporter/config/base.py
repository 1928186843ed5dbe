"""Reusable validated types for the configuration: strict models, durations, secrets, ratios."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    SecretStr,
    ValidationInfo,
)


class StrictModel(BaseModel):
    """A frozen model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Parse `250ms`, `1s`, `1.5s`, `5m`, `1h`, `1m30s` into seconds."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration with a unit such as 250ms, 1s or 5m, got {value!r}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"duration {value!r} must be greater than zero")
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(
            f"invalid duration {value!r}: use a number and a unit (ms, s, m, h), e.g. 250ms"
        )
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be greater than zero")
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
"""Seconds, written in the config as `250ms`, `1s`, `5m`."""


def parse_ratio(value: Any) -> float:
    """Accept `0.001` or `0.1%`; reject anything outside 0..1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a ratio such as 0.001 or 0.1%, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            ratio = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"expected a ratio such as 0.001 or 0.1%, got {value!r}") from None
    elif isinstance(value, int | float):
        ratio = float(value)
    else:
        raise ValueError(f"expected a ratio such as 0.001 or 0.1%, got {value!r}")
    if not 0 < ratio < 1:
        raise ValueError(f"must be between 0 and 1 (0% and 100%), got {value!r}")
    return ratio


Ratio = Annotated[float, BeforeValidator(parse_ratio)]
"""A fraction in (0, 1), written as `0.001` or `0.1%`."""


RESOLVE_SECRETS = "resolve_secrets"
"""The validation-context key that says whether secrets are read (default: they are)."""


class UnresolvedSecret(SecretStr):
    """A well-formed secret reference that was not read (`check-config` without
    `--resolve-secrets`): its source is known, its value is not."""


def _resolve_secret(value: Any, info: ValidationInfo) -> Any:
    """Read a secret from `{env: NAME}` or `{file: PATH}`; errors name the source only.

    With the context's `resolve_secrets` false, only the reference's shape is checked, so
    that a config can be validated where its secrets are not (a CI job, a laptop).
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
    if not isinstance(source, str) or not source:
        raise ValueError(f"'{kind}' must name an environment variable or a file")
    if not (info.context or {}).get(RESOLVE_SECRETS, True):
        return UnresolvedSecret("")
    if kind == "env":
        secret = os.environ.get(source)
        if secret is None:
            raise ValueError(f"environment variable {source} is not set")
        return SecretStr(secret)
    try:
        return SecretStr(Path(source).read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ValueError(f"cannot read secret file {source}: {exc.strerror}") from None


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]
"""A secret given as `{env: NAME}` or `{file: PATH}`, held as a SecretStr."""
