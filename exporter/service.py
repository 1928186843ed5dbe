"""The exporter itself: config → connection → probes → cached results, with a lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from exporter.clock import Clock, SystemClock
from exporter.config import Config
from exporter.connection import CassandraConnection, describe
from exporter.event_loop import EventLoopMonitor
from exporter.health.evaluation import HealthEvaluator
from exporter.health.metrics import HealthCollector
from exporter.health.monitor import HealthMonitor
from exporter.health.readings import probe_readings
from exporter.health.snapshot import HealthSnapshot
from exporter.metrics import RunnerCollector, build_registry
from exporter.scheduler import ProbeRunner
from exporter.schema import SchemaError, ensure_schema
from probes import registry as probe_api

log = logging.getLogger(__name__)


def unknown_datacenters(config: Config, known: set[str]) -> str | None:
    """What is wrong when configured datacenters are not the cluster's, or None.

    The driver knows every host from the system tables, down or not, so a configured name
    missing from them is a misspelling or the wrong cluster, not an outage: requests pinned
    to it could never be served.
    """
    missing = [dc for dc in config.datacenters.all if dc not in known]
    if not known or not missing:
        return None
    names = ", ".join(repr(dc) for dc in missing)
    verb = "is not a datacenter" if len(missing) == 1 else "are not datacenters"
    return (
        f"datacenters: {names} {verb} of this cluster, whose datacenters are "
        f"{', '.join(sorted(known))}"
    )


class Exporter:
    """Owns the connection, the probes and their runner; the HTTP app only reads from it."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.connection = CassandraConnection(config)
        self.context = probe_api.ProbeContext(config, self.connection, self.clock)
        self.probes = probe_api.build_probes(self.context)
        self.runner = ProbeRunner(self.probes, self.clock)
        self.health = HealthMonitor(
            HealthEvaluator(config, self.clock),
            lambda: probe_readings(self.probes, lambda name: self.runner.states[name].runs),
            config.health.evaluation_interval,
        )
        self.loop_monitor = EventLoopMonitor()
        self.registry = build_registry(
            [
                RunnerCollector(self.runner.states, self.cassandra_up),
                *probe_api.family_collectors(self.probes),
                HealthCollector(self.verdicts, config),
                self.loop_monitor,
            ]
        )
        """What /metrics shows, in this order: self metrics, each probe family, health, the
        event loop."""
        self.fatal: asyncio.Future[str] | None = None
        """Set with a message when the exporter cannot go on (e.g. missing schema)."""
        self._connect_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start connecting in the background and start the probes; never waits on Cassandra."""
        self.fatal = asyncio.get_running_loop().create_future()
        self._connect_task = asyncio.create_task(self._connect(), name="cassandra-connect")
        self.health.start()
        self.loop_monitor.start()
        await self.runner.start()

    async def _connect(self) -> None:
        await self.connection.connect_until_established()
        unknown = unknown_datacenters(self.config, self.connection.cluster_datacenters())
        if unknown:
            self._cannot_go_on(unknown)
            return
        delay = 1.0
        while True:
            try:
                await ensure_schema(self.config, self.connection)
                return
            except SchemaError as exc:
                self._cannot_go_on(str(exc))
                return
            except Exception as exc:
                # A node just back from a fault may still be held down, or the cluster gone
                # away again: check again until the schema is known (the probes say the rest).
                log.warning(
                    "could not check the monitoring schema (%s); retrying in %.0f s",
                    describe(exc),
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _cannot_go_on(self, message: str) -> None:
        """Log why, and tell `serve` to stop with exit code 2 (a configuration problem)."""
        log.error("%s", message)
        if self.fatal is not None and not self.fatal.done():
            self.fatal.set_result(message)

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connect_task
        await self.health.stop()
        await self.loop_monitor.stop()
        await self.runner.stop()
        await self.connection.close()

    def cassandra_up(self) -> bool:
        """A session is established and no probe that tells says Cassandra does not answer."""
        return self.connection.connected and probe_api.cassandra_up(self.probes)

    def liveness(self) -> dict[str, bool]:
        """Liveness is about the process: its probe scheduler and its health evaluation run."""
        return {"probe_scheduler": self.runner.alive(), "health_evaluation": self.health.alive()}

    def ready(self) -> dict[str, bool]:
        """Readiness is about the exporter: config loaded, session established, first round run."""
        return {
            "config_loaded": True,
            "session_established": self.connection.connected,
            "first_probe_round_done": self.runner.first_round_done,
        }

    def verdicts(self) -> HealthSnapshot:
        """The latest health evaluation (made on a fixed cadence, never at request time)."""
        return self.health.snapshot
