"""Serving the exporter: the HTTP site, the exporter's lifecycle, and how the process ends."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from exporter.app import create_app
from exporter.config import Config
from exporter.service import Exporter

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2

log = logging.getLogger("exporter")


async def serve(config: Config, host: str, port: int) -> int:
    """Serve the exporter on host:port until SIGTERM or SIGINT, or until it cannot go on.

    Returns the process exit code: 0 after a signal, 1 when it cannot listen, 2 when the
    cluster does not match the config (e.g. a datacenter it lacks, a missing schema) or
    every contact point refused the credentials at start (said in one line on stderr).
    """
    exporter = Exporter(config)
    app = create_app(exporter)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=config.server.shutdown_timeout
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        await runner.cleanup()
        return EXIT_RUNTIME
    log.info("listening on http://%s:%d", host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fatal = exporter.fatal
    assert fatal is not None
    stopping = asyncio.create_task(stop.wait())
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
    try:
        await asyncio.wait_for(runner.cleanup(), timeout=config.server.shutdown_timeout + 3)
    except TimeoutError:
        log.warning("shutdown did not finish in time; exiting anyway")
    if exporter.credentials_refused is not None:
        # Like a config error: one line, the key and the cause, and nothing to retry.
        print(f"cqrs-exporter: {exporter.credentials_refused}", file=sys.stderr, flush=True)
    return code
