"""Serving the exporter: the HTTP site, the exporter's lifecycle, and how the process ends."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from exporter.app import create_app
from exporter.config import Config
from exporter.event_loop import freeze_when
from exporter.service import Exporter
from exporter.web.config import WebConfigError
from exporter.web.server import HttpServer, ListenError, load_web_state

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2

log = logging.getLogger("exporter")


async def serve(
    config: Config, host: str, port: int, web_config_file: str | None = None
) -> int:
    """Serve the exporter on host:port until SIGTERM or SIGINT, or until it cannot go on.

    `web_config_file` (else `server.web_config_file`) is the exporter-toolkit web config:
    TLS, basic auth, headers. Returns the process exit code: 0 after a signal, 1 when it
    cannot listen, 2 when the web config cannot be used, the cluster does not match the
    config (e.g. a datacenter it lacks, a missing schema) or every contact point refused
    the credentials at start (said in one line on stderr).
    """
    try:
        web_state = load_web_state(web_config_file or config.server.web_config_file)
    except WebConfigError as error:
        print(f"{error.source}: invalid web configuration", file=sys.stderr)
        for line in error.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    exporter = Exporter(config)
    http = HttpServer(create_app(exporter), config.server, web_state)
    try:
        await http.start(host, port)
    except ListenError as exc:
        log.error("%s", exc)
        await http.stop()
        return EXIT_RUNTIME

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fatal = exporter.fatal
    assert fatal is not None
    stopping = asyncio.create_task(stop.wait())
    freezing = asyncio.create_task(freeze_when(lambda: exporter.runner.first_round_done))
    ends: set[asyncio.Future[Any]] = {stopping, fatal}
    done, _ = await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    code = EXIT_OK
    if fatal in done:
        if exporter.credentials_refused is None:
            log.error("stopping: %s", fatal.result())
        code = EXIT_CONFIG
    else:
        log.info("stopping on signal")
    stopping.cancel()
    freezing.cancel()
    try:
        await asyncio.wait_for(http.stop(), timeout=config.server.shutdown_timeout + 3)
    except TimeoutError:
        log.warning("shutdown did not finish in time; exiting anyway")
    if exporter.credentials_refused is not None:
        # Like a config error: one line, the key and the cause, and nothing to retry.
        print(f"cqrs-exporter: {exporter.credentials_refused}", file=sys.stderr, flush=True)
    return code
