"""The status page at `/`: every check and component against its threshold, with sparklines.

It renders what is already held: the latest health snapshot, the bounded history the
health monitor keeps, and the probe runner's per-probe states; nothing is evaluated or
fetched at request time. What the page shows is copied on the event loop (`gather`, a
fraction of a millisecond) and formatted in the render thread (`render`), as /metrics is:
the loop then waits at most a thread switch for the GIL, not for the whole page.

Like the health bodies it shows statuses, numbers, times and the names of checks,
datacenters, read models, groups and probes: never host names, user names, secrets, or a
failure's detail (only its bounded reason). Every configured name is escaped.
Self-contained HTML: no scripts, no external assets; it refreshes itself every 10 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from html import escape
from urllib.parse import quote

from aiohttp import web

from exporter import DOCS_URL, __version__
from exporter.clock import Clock
from exporter.config import Config
from exporter.health.history import LOWER_IS_WORSE, HealthHistory, Key, Series
from exporter.health.snapshot import ComponentHealth, HealthSnapshot, HealthView
from exporter.health.verdicts import BREACHES, Status, threshold_for
from exporter.results import Check
from exporter.scheduler import ProbeRunState
from exporter.status.sparkline import sparkline
from exporter.status.style import STYLE
from exporter.status.units import ago, duration, measure, utc

REFRESH_SECONDS = 10

ENDPOINTS = (
    ("/metrics", "Prometheus metrics"),
    ("/health", "health verdict"),
    ("/health?verbose", "verdict with details"),
    ("/health/live", "liveness"),
    ("/health/ready", "readiness"),
)
DOCS = (
    (DOCS_URL, "documentation"),
    (f"{DOCS_URL}/health.md", "health checks"),
    (f"{DOCS_URL}/runbooks.md", "runbooks"),
)

DESCRIPTIONS = {
    Check.WRITE_PATH: "commands can be written in the write datacenter",
    Check.REPLICATION_LAG: "replication lag from the write datacenter, per read datacenter",
    Check.READ_MODEL_SYNC_LAG: "how far each read model trails the write side",
    Check.COMMAND_LATENCY_P99: "p99 of command (write) latency in the write datacenter",
    Check.QUERY_LATENCY_P99: "p99 of query (read) latency, per datacenter",
    Check.SYNC_FAILURE_RATE: "share of writes that never reach a read model correctly",
}


@dataclass(frozen=True)
class PageState:
    """Everything one rendering reads, copied from cached state; nothing in it changes."""

    config: Config
    snapshot: HealthSnapshot
    series: Mapping[Key, Series]
    """Each component's slots in the history's window."""
    window: float
    """The history's window and slot length, in seconds."""
    slot: float
    probes: Mapping[str, ProbeRunState]
    live: Mapping[str, bool]
    ready: Mapping[str, bool]
    now: float
    """Wall-clock time of the request."""


def gather(
    config: Config,
    snapshot: HealthSnapshot,
    history: HealthHistory,
    probes: Mapping[str, ProbeRunState],
    live: Mapping[str, bool],
    ready: Mapping[str, bool],
    clock: Clock,
) -> PageState:
    """A copy of what the page shows, taken on the event loop where it all changes."""
    now = clock.monotonic()
    return PageState(
        config=config,
        snapshot=snapshot,
        series={
            (item.check, item.component): history.series(item.check, item.component, now)
            for items in snapshot.overall.components.values()
            for item in items
        },
        window=history.window,
        slot=history.slot,
        probes={name: replace(run, failures=dict(run.failures)) for name, run in probes.items()},
        live=dict(live),
        ready=dict(ready),
        now=clock.time(),
    )


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _state(status: Status) -> str:
    return f'<span class="state {status.value}">{status.value}</span>'


def _since(moment: float, now: float) -> str:
    return f'<time datetime="{utc(moment)}" title="{utc(moment)}">{_e(ago(moment, now))}</time>'


def _window(state: PageState) -> str:
    return duration(state.window).replace("min", "minutes")


def _lasting(since: float, now: float) -> str:
    """How long since `since`, e.g. `3 min`, with the moment itself as a tooltip."""
    held = _e(duration(now - since)) if now - since >= 1 else "less than 1 s"
    return f'<time datetime="{utc(since)}" title="since {utc(since)}">{held}</time>'


def _threshold(check: Check, config: Config) -> float | None:
    """What the sparkline draws as the threshold; the write path is up at 1."""
    return 1.0 if check is Check.WRITE_PATH else threshold_for(check, config)


def _threshold_text(check: Check, config: Config) -> str:
    threshold = threshold_for(check, config)
    if threshold is None:
        return "available"
    return f"≤ {measure(check, threshold)}"


def _value_text(item: ComponentHealth) -> str:
    if item.value is None:
        return '<span class="muted">no data yet</span>'
    text = _e(measure(item.check, item.value))
    notes = []
    if item.compared is not None:
        notes.append(f"judged on {measure(item.check, item.compared)}")
    if item.samples is not None:
        notes.append(f"{item.samples} samples")
    if item.reason is not None:
        notes.append(item.reason.value)
    if notes:
        text += f"<br/><small>{_e(', '.join(notes))}</small>"
    return text


def _component_row(item: ComponentHealth, state: PageState) -> str:
    config = state.config
    key = (item.check, item.component)
    series = state.series.get(key) or Series(0, round(state.window / state.slot), [])
    worst = "no samples"
    values = [slot.value for slot in series.slots if slot.value is not None]
    if values:
        pick = min if item.check in LOWER_IS_WORSE else max
        worst = f"worst {measure(item.check, pick(values))}"
    label = (
        f"{item.check.value} {item.component}, last {_window(state)}: {worst}, "
        f"threshold {_threshold_text(item.check, config)}"
    )
    css = (
        ' class="down"'
        if item.status is Status.DOWN
        else (' class="breach"' if item.status in BREACHES else "")
    )
    reading = ""
    if item.reading is not item.status:
        reading = f"<br/><small>latest reading {item.reading.value}</small>"
    return (
        f'<tr{css}><th scope="row">{_e(item.component)}</th>'
        f"<td>{_state(item.status)}{reading}</td>"
        f'<td class="num">{_value_text(item)}</td>'
        f'<td class="num">{_e(_threshold_text(item.check, config))}</td>'
        f"<td>{sparkline(series, _threshold(item.check, config), label)}</td>"
        f"<td>{_since(item.since, state.now)}</td></tr>"
    )


def _checks(state: PageState) -> str:
    view = state.snapshot.overall
    severities = state.config.health.severities
    rows = []
    for check in Check:
        aggregate = view.checks.get(check)
        status = aggregate.status if aggregate is not None else Status.UNKNOWN
        breach = severities.of(check).value
        rows.append(
            f'<tbody><tr class="check"><th colspan="6" scope="rowgroup">{check.value} '
            f'{_state(status)} <span class="about">{_e(DESCRIPTIONS[check])}; '
            f"a breach is {breach}</span></th></tr>"
        )
        items = view.components.get(check, ())
        if not items:
            rows.append(
                '<tr><td colspan="6" class="muted">no component reported: its probe is '
                "disabled or has not run yet</td></tr>"
            )
        rows.extend(_component_row(item, state) for item in items)
        rows.append("</tbody>")
    return (
        '<table><thead><tr><th scope="col">Component</th><th scope="col">State</th>'
        '<th scope="col">Value</th><th scope="col">Threshold</th>'
        f'<th scope="col">Last {_window(state)}</th><th scope="col">Since</th>'
        "</tr></thead>" + "".join(rows) + "</table>"
    )


def _groups(state: PageState) -> str:
    groups = state.config.health.groups
    if not groups:
        return '<p class="muted">No health groups are configured (<code>health.groups</code>).</p>'
    rows = []
    for name, group in groups.items():
        view: HealthView | None = state.snapshot.groups.get(name)
        status = view.status if view is not None else Status.UNKNOWN
        since = _since(view.since, state.now) if view is not None else ""
        members = ", ".join(_e(member) for member in group.checks)
        rows.append(
            f'<tr><th scope="row"><a href="/health/{_e(quote(name, safe=""))}">{_e(name)}</a>'
            f"</th><td>{_state(status)}</td><td>{since}</td><td>{members}</td></tr>"
        )
    return (
        '<table><thead><tr><th scope="col">Group</th><th scope="col">State</th>'
        '<th scope="col">Since</th><th scope="col">Checks</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def _probe_row(name: str, run: ProbeRunState, now: float) -> str:
    if run.last_run_time is None or run.last_outcome is None:
        last = '<td colspan="2" class="muted">not run yet</td>'
        result = '<td class="muted">none yet</td>'
    else:
        took = duration(run.last_duration) if run.last_duration is not None else ""
        last = f'<td>{_since(run.last_run_time, now)}</td><td class="num">{_e(took)}</td>'
        if run.last_outcome.success:
            result = '<td class="ok">succeeded</td>'
        else:
            reason = run.last_outcome.reason.value if run.last_outcome.reason else "error"
            result = f'<td class="failed">failed: {_e(reason)}</td>'
    success = (
        _since(run.last_success_time, now)
        if run.last_success_time is not None
        else '<span class="muted">never</span>'
    )
    if run.last_failure_time is not None and run.last_failure_reason is not None:
        failure = f"{_e(run.last_failure_reason.value)}, {_since(run.last_failure_time, now)}"
    else:
        failure = '<span class="muted">none</span>'
    failures = sum(run.failures.values())
    return (
        f'<tr><th scope="row">{_e(name)}</th>{last}{result}<td>{success}</td>'
        f'<td>{failure}</td><td class="num">{run.runs} / {failures} / {run.skipped}</td></tr>'
    )


def _probes(state: PageState) -> str:
    if not state.probes:
        return '<p class="muted">No probe is enabled.</p>'
    rows = "".join(_probe_row(name, run, state.now) for name, run in state.probes.items())
    return (
        '<table><thead><tr><th scope="col">Probe</th><th scope="col">Last run</th>'
        '<th scope="col">Took</th><th scope="col">Last result</th>'
        '<th scope="col">Last success</th><th scope="col">Last failure</th>'
        '<th scope="col">Runs / failed / skipped</th></tr></thead><tbody>'
        + rows
        + "</tbody></table>"
    )


def _flags(checks: Mapping[str, bool]) -> str:
    return ", ".join(
        f"{_e(name.replace('_', ' '))}: {'yes' if ok else 'NO'}" for name, ok in checks.items()
    )


def _header(state: PageState) -> str:
    snapshot = state.snapshot
    datacenters = state.config.datacenters
    reads = ", ".join(_e(dc) for dc in datacenters.read) or "none"
    if snapshot.evaluated_at is None:
        evaluated = "not evaluated yet"
    else:
        evaluated = f"evaluated {_since(snapshot.evaluated_at, state.now)}"
    links = "".join(
        f'<li><a href="{_e(path)}">{_e(path)}</a> <small>{_e(what)}</small></li>'
        for path, what in ENDPOINTS
    )
    docs = "".join(f'<li><a href="{_e(url)}">{_e(what)}</a></li>' for url, what in DOCS)
    return (
        f"<header><h1>CQRS Cassandra exporter {_e(__version__)}</h1>"
        f'<nav aria-label="Endpoints"><ul class="links">{links}</ul></nav>'
        f'<nav aria-label="Documentation"><ul class="links"><li><small>Docs:</small></li>{docs}'
        "</ul></nav>"
        f'<div class="verdict"><div>Overall<br/>{_state(snapshot.overall.status)}</div>'
        f"<div><p>{snapshot.overall.status.value} for {_lasting(snapshot.overall.since, state.now)}"
        f"; {evaluated}.</p>"
        f"<p>Write datacenter <b>{_e(datacenters.write)}</b>; read datacenters <b>{reads}</b>."
        f"</p><p><small>Live: {_flags(state.live)} · Ready: {_flags(state.ready)}</small>"
        f"</p></div></div></header>"
    )


def render(state: PageState) -> str:
    """The whole page, as text."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"/>'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}"/>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>{_e(state.snapshot.overall.status.value)} · CQRS Cassandra exporter</title>"
        f"<style>{STYLE}</style></head><body>"
        + _header(state)
        + '<main><section id="checks"><h2>Health checks</h2>'
        + _checks(state)
        + "<p><small>Each sparkline: the value judged against the threshold, the worst of "
        f"each {state.slot:g} s, over the last {_window(state)}; "
        '<span class="key"></span> the threshold (for the write path, available); '
        "the band under it the state (green UP, amber DEGRADED, red DOWN, grey UNKNOWN)."
        '</small></p></section><section id="groups"><h2>Health groups</h2>'
        + _groups(state)
        + '</section><section id="probes"><h2>Probes</h2>'
        + _probes(state)
        + "<p><small>Failure reasons are bounded (timeout, unavailable, auth, unauthorized, "
        "tls, error); the log has "
        f"each failure's detail. This page refreshes every {REFRESH_SECONDS} s.</small></p>"
        + "</section>"
        + "</main></body></html>"
    )


class StatusPage:
    """The handler of `/`: gathers the cached state on the loop, renders it in `renderer`."""

    def __init__(
        self,
        config: Config,
        snapshot: Callable[[], HealthSnapshot],
        history: HealthHistory,
        probes: Mapping[str, ProbeRunState],
        live: Callable[[], Mapping[str, bool]],
        ready: Callable[[], Mapping[str, bool]],
        clock: Clock,
        renderer: Executor,
    ) -> None:
        self.config = config
        self._snapshot = snapshot
        self._history = history
        self._probes = probes
        self._live = live
        self._ready = ready
        self._clock = clock
        self._renderer = renderer

    def state(self) -> PageState:
        return gather(
            self.config,
            self._snapshot(),
            self._history,
            self._probes,
            self._live(),
            self._ready(),
            self._clock,
        )

    async def handle(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(self._renderer, render, self.state())
        return web.Response(
            text=text, content_type="text/html", headers={"Cache-Control": "no-store"}
        )
