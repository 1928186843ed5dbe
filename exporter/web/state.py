"""The web config in force, and its reload when the file or a file it names changes.

The TLS listener is given one `SwitchingContext` for its life; each new connection takes
the context of the config in force, so a rotated certificate (or CA, or cipher list) is
served from the next handshake on, without a restart. A config that no longer loads is
logged once, as one line, and the last good one stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path
from typing import Any

from exporter.web.config import WebConfigError, load_web_config

log = logging.getLogger("exporter.web")

RELOAD_INTERVAL = 3.0
"""How often the files are looked at (a stat each; nothing is read unless one changed)."""

Signature = tuple[tuple[int, int, int, int] | None, ...]


class SwitchingContext(ssl.SSLContext):
    """A server context that hands each new connection to the context in force."""

    current: ssl.SSLContext

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self.current.wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self.current.wrap_socket(*args, **kwargs)


def _stat(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class WebState:
    """The web config in force (`config`), the listener's TLS context, and the reload."""

    def __init__(self, path: Path) -> None:
        """Load `path`; WebConfigError (one line per problem) if it cannot be used."""
        self.path = path
        self.config, context = load_web_config(path)
        self._signature = self._files()
        self._failed: str | None = None
        self.context: SwitchingContext | None = None
        if context is not None:
            self.context = SwitchingContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.current = context
        self.reloads = 0

    @property
    def tls(self) -> bool:
        return self.context is not None

    def _files(self) -> Signature:
        paths = [self.path]
        if (tls := self.config.tls_server_config) is not None:
            paths += [tls.cert_file, tls.key_file]
            if tls.client_ca_file is not None:
                paths.append(tls.client_ca_file)
        return tuple(_stat(path) for path in paths)

    def poll(self) -> bool:
        """Reload if any file changed; True when a new config came into force."""
        signature = self._files()
        if signature == self._signature:
            return False
        try:
            config, context = load_web_config(self.path)
            if (context is None) != (self.context is None):
                raise WebConfigError(
                    str(self.path),
                    ["tls_server_config: adding or removing TLS needs a restart"],
                )
        except WebConfigError as error:
            message = "; ".join(error.errors)
            if message != self._failed:
                log.error(
                    "web config %s not reloaded, the last good one stays in force: %s",
                    self.path,
                    message,
                )
                self._failed = message
            self._signature = signature
            return False
        self.config = config
        if self.context is not None and context is not None:
            self.context.current = context
        self._signature = self._files()
        self._failed = None
        self.reloads += 1
        log.info("web config %s reloaded", self.path)
        return True

    async def watch(self, interval: float = RELOAD_INTERVAL) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.poll()
            except Exception:  # never let the watcher die: the next poll tries again
                log.exception("web config %s: reload failed", self.path)
