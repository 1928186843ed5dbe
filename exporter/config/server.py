"""The HTTP listener and logging."""

from __future__ import annotations

from enum import StrEnum

from pydantic import field_validator

from exporter.config.base import Duration, StrictModel


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def parse_listen(value: str) -> tuple[str, int]:
    """Split `HOST:PORT` (or `[v6]:PORT`) into its parts."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    host = host.strip("[]") or "0.0.0.0"
    return host, port


class ServerConfig(StrictModel):
    listen: str = "0.0.0.0:9469"
    """Address and port of the HTTP server (`HOST:PORT`); `serve --listen` overrides it."""
    shutdown_timeout: Duration = 5.0
    """How long in-flight HTTP requests get to finish on SIGTERM."""
    log_level: str = "INFO"
    """`DEBUG`, `INFO`, `WARNING` or `ERROR`."""
    log_format: LogFormat = LogFormat.TEXT
    """One line of text, or one JSON object, per log record."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)
