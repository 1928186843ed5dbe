"""The exporter itself: config → connection → probes → cached results, with a lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cassandra.cluster import NoHostAvailable

from exporter.budget import reserved_estimate
from exporter.clock import Clock, SystemClock
from exporter.config import Config, format_duration
from exporter.connection import CassandraConnection, describe
from exporter.event_loop import EventLoopMonitor
from exporter.health.evaluation import HealthEvaluator
from exporter.health.metrics import HealthCollector
from exporter.health.monitor import HealthMonitor
from exporter.health.readings import probe_readings
from exporter.health.snapshot import HealthSnapshot
from exporter.metrics import BudgetCollector, RunnerCollector, build_registry
from exporter.scheduler import ProbeRunner
from exporter.schema import SchemaError, ensure_schema
from exporter.slo.freshness import VisibilitySource
from exporter.slo.monitor import SloMonitor
from exporter.stretch import ScheduleStretch
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
        self.config = probe_api.shard_config(config)
        """The config as this exporter's shard sees it (all of it when unsharded): its probes,
        /health and the status page cover its own read models and queries."""
        config = self.config
        self.clock = clock or SystemClock()
        self.connection = CassandraConnection(config)
        self.context = probe_api.ProbeContext(
            config,
            self.connection,
            self.clock,
            starting_until=self.clock.monotonic() + config.probes.startup_grace,
        )
        self.probes = probe_api.build_probes(self.context)
        self.stretch = ScheduleStretch(
            self.connection.budget,
            reserved_estimate(config),
            {
                p.name: (p.schedule.interval, expected)
                for p in self.probes
                if (expected := probe_api.expected_requests(p)) is not None
            },
        )
        self.runner = ProbeRunner(
            self.probes,
            self.clock,
            quiet_until=self.context.starting_until,
            stretch=self.stretch,
        )
        read_models = {
            p.name: name for p in self.probes if (name := probe_api.read_model_name(p)) is not None
        }
        visibility = [p for p in self.probes if isinstance(p, VisibilitySource)]
        self.slo = SloMonitor(config, self.clock, lambda: visibility)
        self.health = HealthMonitor(
            HealthEvaluator(config, self.clock),
            lambda: probe_readings(self.probes, lambda name: self.runner.states[name].runs),
            config.health.evaluation_interval,
            listeners=[self.slo.record],
        )
        self.loop_monitor = EventLoopMonitor()
        self.registry = build_registry(
            [
                RunnerCollector(self.runner.states, self.cassandra_up),
                *probe_api.family_collectors(self.probes),
                HealthCollector(self.verdicts, config),
                self.slo,
                self.loop_monitor,
                BudgetCollector(self.connection.budget, self.runner, read_models, config.sharding),
            ],
            config.probes.budget.max_series,
        )
        """What /metrics shows, in this order: self metrics, each probe family, health, the
        SLIs and read-your-writes waits, the event loop, the request budget and shard; under
        the max_series guard."""
        self.fatal: asyncio.Future[str] | None = None
        """Set with a message when the exporter cannot go on (e.g. missing schema)."""
        self.credentials_refused: str | None = None
        """Why the exporter stopped before its first session: every contact point refused
        the credentials (`serve` says it in one line)."""
        self._connect_task: asyncio.Task[None] | None = None
        self._probes_task: asyncio.Task[None] | None = None
        self._schema_checked = asyncio.Event()

    async def start(self) -> None:
        """Start connecting in the background; never waits on Cassandra.

        The probes start once a session is established and the schema checked, so that
        none of them fails for want of either; if that takes longer than the startup grace,
        they start anyway and say what fails.
        """
        self.fatal = asyncio.get_running_loop().create_future()
        self._connect_task = asyncio.create_task(self._connect(), name="cassandra-connect")
        self._probes_task = asyncio.create_task(self._start_probes(), name="start-probes")
        self.health.start()
        self.loop_monitor.start()

    async def _start_probes(self) -> None:
        grace = self.context.starting_until - self.clock.monotonic()
        try:
            await asyncio.wait_for(self._schema_checked.wait(), timeout=max(0.0, grace))
        except TimeoutError:
            log.warning(
                "no session and checked schema after %s: starting the probes anyway",
                format_duration(self.config.probes.startup_grace),
            )
        await self.runner.start()

    def _log_level(self) -> int:
        """INFO while the startup grace lasts (a cluster still coming up), WARNING after."""
        starting = self.clock.monotonic() < self.context.starting_until
        return logging.INFO if starting else logging.WARNING

    async def _connect(self) -> None:
        try:
            await self.connection.connect_until_established(level=self._log_level)
        except NoHostAvailable as exc:  # every contact point refused the credentials
            self.credentials_refused = describe(exc)
            self._cannot_go_on(self.credentials_refused, logged=False)
            return
        unknown = unknown_datacenters(self.config, self.connection.cluster_datacenters())
        if unknown:
            self._cannot_go_on(unknown)
            return
        delay = 1.0
        while True:
            try:
                await ensure_schema(self.config, self.connection)
                self._schema_checked.set()
                return
            except SchemaError as exc:
                self._cannot_go_on(str(exc))
                return
            except Exception as exc:
                # A node just back from a fault may still be held down, or the cluster gone
                # away again: check again until the schema is known (the probes say the rest).
                log.log(
                    self._log_level(),
                    "could not check the monitoring schema (%s); retrying in %.0f s",
                    describe(exc),
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _cannot_go_on(self, message: str, *, logged: bool = True) -> None:
        """Log why, and tell `serve` to stop with exit code 2 (a configuration problem)."""
        if logged:
            log.error("%s", message)
        if self.fatal is not None and not self.fatal.done():
            self.fatal.set_result(message)

    async def stop(self) -> None:
        for task in (self._probes_task, self._connect_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.health.stop()
        await self.loop_monitor.stop()
        await self.runner.stop()
        await self.connection.close()

    def cassandra_up(self) -> bool:
        """A session is established and no probe that tells says Cassandra does not answer."""
        return self.connection.connected and probe_api.cassandra_up(self.probes)

    def liveness(self) -> dict[str, bool]:
        """Liveness is about the process: its probe scheduler and its health evaluation run.

        Before the probes start (at most the startup grace), the scheduler is not due yet.
        """
        scheduler = self.runner.alive() if self.runner.started else self._waiting_to_probe()
        return {"probe_scheduler": scheduler, "health_evaluation": self.health.alive()}

    def _waiting_to_probe(self) -> bool:
        return self._probes_task is not None and not self._probes_task.done()

    def ready(self) -> dict[str, bool]:
        """Readiness is about the exporter: config loaded, session established, schema
        checked, first round run."""
        return {
            "config_loaded": True,
            "session_established": self.connection.connected,
            "schema_checked": self._schema_checked.is_set(),
            "first_probe_round_done": self.runner.first_round_done,
        }

    def verdicts(self) -> HealthSnapshot:
        """The latest health evaluation (made on a fixed cadence, never at request time)."""
        return self.health.snapshot
