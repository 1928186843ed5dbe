"""The HTTP listener and logging."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

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


class HttpLimits(StrictModel):
    """Bounds on what one client can hold of the HTTP server (every listener)."""

    header_timeout: Duration = Field(default=10.0, le=300.0)
    """A connection that has not sent a whole request head this long after it opened (or
    after its previous request's first byte) is closed: slow clients cannot hold sockets."""
    keepalive_timeout: Duration = Field(default=30.0, le=3600.0)
    """An idle keep-alive connection is closed after this long."""
    max_connections: int = Field(default=1000, ge=1, le=100_000)
    """Open connections on the main listener; beyond it a new one is closed at once, but for
    a few reserved for requests to /health/*."""
    max_line_size: int = Field(default=8190, ge=256, le=65_536)
    """Longest request line (method, path and query), in bytes; longer ones get 400."""
    max_field_size: int = Field(default=8190, ge=256, le=65_536)
    """Longest header line, in bytes."""
    max_headers: int = Field(default=100, ge=8, le=1000)
    """Most header lines in one request."""


class ServerConfig(StrictModel):
    listen: str = "0.0.0.0:9469"
    """Address and port of the HTTP server (`HOST:PORT`); `serve --listen` overrides it."""
    shutdown_timeout: Duration = 5.0
    """How long in-flight HTTP requests get to finish on SIGTERM."""
    log_level: str = "INFO"
    """`DEBUG`, `INFO`, `WARNING` or `ERROR`."""
    log_format: LogFormat = LogFormat.TEXT
    """One line of text, or one JSON object, per log record."""
    web_config_file: str | None = None
    """A web config in the Prometheus exporter-toolkit format (TLS, basic auth, headers);
    `serve --web.config.file` overrides it. Re-read when it or its files change."""
    health_listen: str | None = None
    """`HOST:PORT` of a second, plain-HTTP listener serving only /health/live and
    /health/ready, without TLS or auth: for kubelet probes when the main port needs them."""
    http: HttpLimits = HttpLimits()
    """Limits on HTTP connections and requests."""

    @field_validator("listen", "health_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @field_validator("web_config_file")
    @classmethod
    def _web_config_file(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name a file")
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
