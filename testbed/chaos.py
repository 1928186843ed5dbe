"""`python -m testbed chaos`: a scripted fault story played on the running demo.

Each step injects one fault — replication into a datacenter delayed, a datacenter's
replication partitioned, a node stopped, the projector stopped — and watches the demo's
Prometheus until the alerts the step targets have gone pending and fired; then it heals the
fault and waits until they have resolved. Every change of an alert's state is printed as it
is seen, with the time since the step began.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from exporter.config.base import parse_duration
from testbed.cluster import TestbedCluster, default_base_dir
from testbed.demo import read_state
from testbed.errors import TestbedError

POLL_SECONDS = 2.0
DELAY_MS = 1500
# How long a step may wait for its alerts to fire, beyond their `for:`, and to resolve.
FIRE_MARGIN_SECONDS = 180.0
RESOLVE_TIMEOUT_SECONDS = 300.0
COMMITTED_FOR_SECONDS = 300.0


@dataclass(frozen=True)
class Target:
    """An alert a step expects, picked out by its name and some of its labels."""

    alert: str
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, alert: dict[str, Any]) -> bool:
        labels = alert.get("labels", {})
        return labels.get("alertname") == self.alert and all(
            labels.get(key) == value for key, value in self.labels
        )

    def __str__(self) -> str:
        shown = ",".join(f'{key}="{value}"' for key, value in self.labels)
        return f"{self.alert}{{{shown}}}" if shown else self.alert


@dataclass
class Step:
    key: str
    fault: str
    inject: Callable[[], None]
    heal: Callable[[], None]
    targets: list[Target]


@dataclass
class Transition:
    step: str
    target: str
    state: str  # "pending", "firing" or "resolved"
    seconds: float  # since the step's fault was injected


@dataclass
class StepResult:
    step: str
    transitions: list[Transition] = field(default_factory=list)
    problem: str | None = None


def alert_states(prometheus: str, attempts: int = 5) -> list[dict[str, Any]]:
    """The active alerts (pending or firing) of the Prometheus at `prometheus`; a few tries
    before giving up, since a busy Prometheus may not answer one request in time."""
    failure: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(POLL_SECONDS)
        try:
            with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=5.0) as response:
                body = json.loads(response.read())
            alerts: list[dict[str, Any]] = body["data"]["alerts"]
            return alerts
        except (OSError, ValueError, KeyError) as exc:
            failure = exc
    raise TestbedError(f"the demo's Prometheus at {prometheus} does not answer: {failure}")


def state_of(target: Target, alerts: Sequence[dict[str, Any]]) -> str:
    """The worst state of the alerts matching `target`: firing, pending or resolved."""
    states = {alert.get("state") for alert in alerts if target.matches(alert)}
    if "firing" in states:
        return "firing"
    return "pending" if "pending" in states else "resolved"


def story(cluster: TestbedCluster, workload_pid: int) -> list[Step]:
    """The steps, in the order they are played."""
    first, *others = cluster.read_datacenters
    last = others[-1] if others else first

    def projector(sig: signal.Signals) -> Callable[[], None]:
        return lambda: os.kill(workload_pid, sig)

    return [
        Step(
            "delay", f"replication into {last} delayed {DELAY_MS} ms (its clients still served)",
            lambda: cluster.delay(last, DELAY_MS), lambda: cluster.heal(last),
            [Target("CqrsReplicationLagHigh", (("target_datacenter", last),))],
        ),
        Step(
            "partition", f"replication into and out of {first} cut (its clients still served)",
            lambda: cluster.partition(first), lambda: cluster.heal(first),
            [Target("CqrsReplicationLagHigh", (("target_datacenter", first),))],
        ),
        Step(
            "projector", "the workload's projector stopped (read models fall behind)",
            projector(signal.SIGUSR1), projector(signal.SIGUSR2),
            [Target("CqrsReadModelSyncLagHigh")],
        ),
        # Last: the alerts a dead datacenter also raises judge windows of 5 to 15 minutes
        # (query p99, sentinels lost, failure rates) and stay a while after it is back.
        Step(
            "node", f"the node(s) of {last} stopped (SIGKILL)",
            lambda: cluster.kill(last), lambda: cluster.start(last),
            [Target("CqrsReplicationLagHigh", (("target_datacenter", last),))],
        ),
    ]


QUIET_LABELS = frozenset({"alertname", "severity", "instance", "job"})


def alert_name(alert: dict[str, Any]) -> str:
    labels = alert.get("labels", {})
    shown = ",".join(
        f'{key}="{value}"' for key, value in sorted(labels.items()) if key not in QUIET_LABELS
    )
    return f"{labels.get('alertname')}{{{shown}}}" if shown else str(labels.get("alertname"))


def _say(text: str) -> None:
    print(f"chaos: {text}", flush=True)


def play_step(step: Step, prometheus: str, fire_within: float) -> StepResult:
    """Inject, wait until every target fired, heal, wait until every target resolved."""
    result = StepResult(step.key)
    seen = {str(target): "resolved" for target in step.targets}
    if not _clear(step, prometheus):
        result.problem = "its alerts were still active from before it began"
        _say(f"{step.key}: {result.problem}")
        return result
    _say(f"{step.key}: {step.fault}; waiting for {', '.join(seen)} to fire")
    step.inject()
    began = time.monotonic()
    healed = False
    others: dict[str, str] = {
        alert_name(alert): str(alert.get("state")) for alert in alert_states(prometheus)
    }
    try:
        deadline = began + fire_within
        while True:
            alerts = alert_states(prometheus)
            _report_others(step, alerts, others, began)
            for target in step.targets:
                state = state_of(target, alerts)
                if state == seen[str(target)]:
                    continue
                seen[str(target)] = state
                elapsed = time.monotonic() - began
                phases = [t.state for t in result.transitions if t.target == str(target)]
                # The story's phases, each once: pending, firing, then (after healing)
                # resolved. Instances of one target can change places in between (one read
                # model's alert resolving as another's goes pending): shown, not counted.
                advances = (
                    (state == "pending" and not phases)
                    or (state == "firing" and "firing" not in phases)
                    or (state == "resolved" and healed and "firing" in phases)
                )
                if advances:
                    result.transitions.append(Transition(step.key, str(target), state, elapsed))
                    _say(f"{step.key}: {target} {state} after {elapsed:.0f} s")
                else:
                    _say(f"{step.key}: {target} {state} again after {elapsed:.0f} s")
            if not healed and all(state == "firing" for state in seen.values()):
                _say(f"{step.key}: healing")
                step.heal()
                healed = True
                deadline = time.monotonic() + RESOLVE_TIMEOUT_SECONDS
            elif healed and all(state == "resolved" for state in seen.values()):
                return result
            if time.monotonic() >= deadline:
                waiting = "resolve" if healed else "fire"
                late = [name for name, state in seen.items()
                        if (state != "resolved" if healed else state != "firing")]
                result.problem = f"{', '.join(late)} did not {waiting} in time"
                _say(f"{step.key}: {result.problem}")
                return result
            time.sleep(POLL_SECONDS)
    finally:
        if not healed:
            step.heal()


def _clear(step: Step, prometheus: str) -> bool:
    """Wait until no alert the step targets is active (an earlier fault can leave one
    pending or firing): each target's story must begin from resolved."""
    deadline = time.monotonic() + RESOLVE_TIMEOUT_SECONDS
    said = False
    while True:
        alerts = alert_states(prometheus)
        active = [str(t) for t in step.targets if state_of(t, alerts) != "resolved"]
        if not active:
            return True
        if not said:
            _say(f"{step.key}: waiting for {', '.join(active)} to resolve before it begins")
            said = True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def _report_others(
    step: Step, alerts: Sequence[dict[str, Any]], known: dict[str, str], began: float
) -> None:
    """Print the changes of the alerts the step does not wait for (it shows what else the
    fault raises)."""
    now = {
        alert_name(alert): str(alert.get("state"))
        for alert in alerts
        if not any(target.matches(alert) for target in step.targets)
    }
    elapsed = time.monotonic() - began
    for name in sorted(set(now) | set(known)):
        state = now.get(name, "resolved")
        if known.get(name, "resolved") != state:
            _say(f"{step.key}: (also) {name} {state} after {elapsed:.0f} s")
    known.clear()
    known.update(now)


def play(
    base_dir: Path, steps: Sequence[str] | None = None, fire_within: float | None = None
) -> list[StepResult]:
    """Play the story (or the named steps) on the demo running on the testbed in `base_dir`."""
    cluster = TestbedCluster.load(base_dir)
    if not cluster.is_running():
        raise TestbedError(f"the testbed in {base_dir} is not running; start it with `make run`")
    demo = read_state(cluster.base_dir)
    alert_for = demo.get("alert_for")
    if fire_within is None:
        for_seconds = COMMITTED_FOR_SECONDS if alert_for is None else parse_duration(alert_for)
        fire_within = for_seconds + FIRE_MARGIN_SECONDS
    chosen = story(cluster, int(demo["workload_pid"]))
    if steps:
        unknown = sorted(set(steps) - {step.key for step in chosen})
        if unknown:
            raise TestbedError(
                f"no step {', '.join(unknown)}; the steps are "
                + ", ".join(step.key for step in chosen)
            )
        chosen = [step for step in chosen if step.key in steps]
    _say(f"playing on the demo: alerts at {demo['prometheus']}/alerts, "
         f"status page at {demo['exporter']}/")
    results = []
    for step in chosen:
        results.append(play_step(step, demo["prometheus"], fire_within))
    return results


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(1, f"testbed chaos: {message} (see `{self.prog} --help`)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m testbed chaos",
        description="Play faults on the running demo (`make run`) and watch its alerts go "
        "pending, fire and resolve.",
    )
    parser.add_argument("--dir", type=Path, default=None,
                        help="the demo's testbed folder (default: $CQRS_TESTBED_DIR or .testbed)")
    parser.add_argument("--steps", default=None, metavar="LIST",
                        help="comma-separated steps to play (default: delay,partition,node,"
                        "projector)")
    args = parser.parse_args(argv)
    steps = [name.strip() for name in args.steps.split(",")] if args.steps else None
    try:
        results = play((args.dir or default_base_dir()).resolve(), steps)
    except TestbedError as exc:
        print(f"testbed chaos: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed chaos: interrupted (the fault in play was healed)", file=sys.stderr)
        return 130
    failed = [result for result in results if result.problem]
    for result in results:
        verdict = result.problem or "pending, fired and resolved"
        _say(f"{result.step}: {verdict}")
    return 1 if failed else 0
