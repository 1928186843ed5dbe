"""Access on a password-auth cluster: the role `cqrs-exporter grants` prints is enough, each
grant is needed and named when missing, refused credentials are said and counted.

A real testbed with PasswordAuthenticator and CassandraAuthorizer. As the superuser, the
test creates the application tables, the monitoring schema (`cqrs-exporter schema`) and the
role with exactly the statements `cqrs-exporter grants` prints (the password placeholder
filled in); a real `cqrs-exporter serve` runs as that role with every probe kind enabled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy
from cassandra.query import SimpleStatement
from prometheus_client.parser import text_string_to_metric_families

from exporter.grants import PASSWORD_PLACEHOLDER
from testbed.cluster import TestbedCluster
from testbed.pytest_plugin import TestbedKeeper
from tests.support import free_port, serve_command, serve_until_exit

pytestmark = pytest.mark.cluster

T = TypeVar("T")
ROLE = "cqrs_exporter"
PASSWORD = "first-password"
ACCESS_REASONS = ("auth", "unauthorized", "tls")
APP_SCHEMA = [
    "CREATE KEYSPACE IF NOT EXISTS shop WITH replication = {'class': "
    "'NetworkTopologyStrategy', 'us-east': 1, 'ca-central': 1, 'eu-west': 1}",
    "CREATE TABLE IF NOT EXISTS shop.events (day date, id timeuuid, kind text, "
    "PRIMARY KEY (day, id))",
    "CREATE TABLE IF NOT EXISTS shop.checkpoints (projector text PRIMARY KEY, position timeuuid)",
    "CREATE TABLE IF NOT EXISTS shop.order_status (id timeuuid PRIMARY KEY, status text)",
    "CREATE TABLE IF NOT EXISTS shop.orders_by_customer (customer_id int, order_id int, "
    "total int, PRIMARY KEY (customer_id, order_id))",
    *(f"INSERT INTO shop.orders_by_customer (customer_id, order_id, total) VALUES ({c}, 1, 10)"
      for c in range(5)),
]
READ_MODELS = [
    {
        "name": "projection",
        "method": "checkpoint",
        "checkpoint": {
            "head_query": "SELECT id FROM shop.events WHERE day = currentDate() "
            "ORDER BY id DESC LIMIT 1",
            "checkpoint_query": "SELECT position FROM shop.checkpoints WHERE projector = 'orders'",
        },
    },
    {
        "name": "order_status",
        "method": "sentinel",
        "interval": "1s",
        "timeout": "900ms",
        "sentinel": {
            # The sentinel's own projection is in the batch: it shows at once.
            "write": "BEGIN BATCH "
            "INSERT INTO shop.events (day, id, kind) VALUES (:sentinel_date, :sentinel_id, "
            "'OrderCreated'); "
            "INSERT INTO shop.order_status (id, status) VALUES (:sentinel_id, :sentinel_tag); "
            "APPLY BATCH",
            "read": "SELECT status FROM shop.order_status WHERE id = :sentinel_id",
            "match": {"status": "sentinel_tag"},
            "sentinel_timeout": "10s",
        },
    },
]


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    message: str,
    details: Callable[[], str] = lambda: "",
) -> T:
    """Call `check` until it is truthy; past the deadline fail with `message` and `details`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{message} not met within {timeout:g} s (last: {last!r}) {details()}"
            )
        time.sleep(0.25)


@pytest.fixture(scope="module")
def auth_cluster(testbed_keeper: TestbedKeeper) -> TestbedCluster:
    """A testbed with PasswordAuthenticator and CassandraAuthorizer, for this module's tests
    (the keeper stops a testbed of another shape first: one runs at a time)."""
    return testbed_keeper.get(password_auth=True)


@pytest.fixture(scope="module")
def superuser(auth_cluster: TestbedCluster) -> Iterator[Session]:
    assert auth_cluster.credentials is not None
    driver = Cluster(
        auth_cluster.contact_points,
        auth_provider=PlainTextAuthProvider(*auth_cluster.credentials),
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=auth_cluster.write_datacenter)
        )},
        protocol_version=5,
    )
    session = driver.connect()
    yield session
    driver.shutdown()


def exporter_config(cluster: TestbedCluster, password_file: Path) -> dict[str, Any]:
    fast = {"interval": "1s", "timeout": "800ms"}
    return {
        "cluster": {
            "contact_points": cluster.contact_points,
            "connect_timeout": "5s",
            "reconnect_max_delay": "2s",
            "auth": {"username": ROLE, "password": {"file": str(password_file)}},
        },
        "datacenters": {
            "write": cluster.write_datacenter,
            "read": list(cluster.read_datacenters),
        },
        "monitoring": {"create_schema": False, "replication_factor": 1},
        "probes": {
            "startup_grace": "30s",
            "reachability": fast,
            "replication": {"backlog": fast},
            "latency": {
                "interval": "1s",
                "timeout": "500ms",
                "rate": 4,
                "window": "30s",
                "queries": [
                    {
                        "name": "by_customer",
                        "cql": "SELECT total FROM shop.orders_by_customer WHERE customer_id = ?",
                        "key_query": "SELECT DISTINCT customer_id FROM shop.orders_by_customer",
                    }
                ],
                "server": fast,
            },
        },
        "read_models": READ_MODELS,
    }


def cli(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60,
        check=True,
    )
    return result.stdout


def cql_statements(text: str) -> list[str]:
    """The statements of a CQL script whose comments are whole `--` lines."""
    code = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


@dataclass
class Serving:
    url: str
    stderr: Path
    process: subprocess.Popen[bytes]
    grants: list[str]

    def samples(self) -> list[Any]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        return [s for family in text_string_to_metric_families(text) for s in family.samples]

    def failures(self, reason: str) -> float:
        return sum(
            s.value for s in self.samples()
            if s.name.endswith("_failures_total") and s.labels.get("reason") == reason
        )

    def log(self) -> str:
        return self.stderr.read_text()


@pytest.fixture(scope="module")
def serving(
    auth_cluster: TestbedCluster, superuser: Session, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serving]:
    folder = tmp_path_factory.mktemp("access")
    password_file = folder / "password"
    password_file.write_text(PASSWORD)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(exporter_config(auth_cluster, password_file)))
    for statement in APP_SCHEMA + cql_statements(cli("schema", "--config", str(config))):
        # At ALL: the latency probe reads its keys in every datacenter as soon as it starts.
        superuser.execute(SimpleStatement(statement, consistency_level=ConsistencyLevel.ALL),
                          timeout=60)
    printed = cql_statements(cli("grants", "--config", str(config)))
    assert printed[0].startswith(f"CREATE ROLE IF NOT EXISTS {ROLE} ")
    for statement in printed:
        superuser.execute(statement.replace(PASSWORD_PLACEHOLDER, PASSWORD), timeout=60)
    port = free_port()
    stderr = folder / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            serve_command(config, f"127.0.0.1:{port}"),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    running = Serving(f"http://127.0.0.1:{port}", stderr, process, printed[1:])
    try:
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


EXPECTED_PROBES = {"reachability", "replication", "replication_backlog", "latency",
                   "server_latency", "read_model:projection", "read_model:order_status"}


def succeeding(serving: Serving, seen: set[str]) -> bool:
    """Whether every probe has succeeded at least once (collected in `seen`)."""
    try:
        samples = serving.samples()
    except OSError:
        return False
    seen |= {s.labels["probe"] for s in samples
             if s.name == "cqrs_probe_success" and s.value == 1.0}
    return seen >= EXPECTED_PROBES


def all_succeed(serving: Serving, after: str, timeout: float = 120) -> None:
    seen: set[str] = set()
    wait_for(
        lambda: succeeding(serving, seen),
        timeout=timeout,
        message=f"every probe succeeds {after}",
        details=lambda: f"missing {sorted(EXPECTED_PROBES - seen)}; log: {serving.log()[-3000:]}",
    )


def test_every_probe_succeeds_with_exactly_the_printed_grants(serving: Serving) -> None:
    all_succeed(serving, "with the printed grants")
    for reason in ACCESS_REASONS:
        assert serving.failures(reason) == 0, serving.log()[-3000:]
    assert {s for s in serving.grants if "system_views." in s} == {
        f"GRANT SELECT ON TABLE system_views.{table} TO {ROLE}"
        for table in ("pending_hints", "internode_outbound", "coordinator_read_latency",
                      "coordinator_write_latency")
    }


def quiet(serving: Serving, reason: str, seconds: float) -> Callable[[], bool]:
    """A check: true once the `reason` failures have not grown for `seconds`."""
    last = {"value": serving.failures(reason), "since": time.monotonic()}

    def check() -> bool:
        value = serving.failures(reason)
        if value != last["value"]:
            last.update(value=value, since=time.monotonic())
        return time.monotonic() - last["since"] >= seconds

    return check


GRANT = re.compile(r"GRANT (\w+) ON TABLE (\S+) TO (\S+)")


def revoke_and_grant_again(serving: Serving, superuser: Session, statement: str) -> None:
    match = GRANT.fullmatch(statement)
    assert match is not None, statement
    permission, table, role = match.groups()
    before = serving.failures("unauthorized")
    logged = len(serving.log())
    superuser.execute(f"REVOKE {permission} ON TABLE {table} FROM {role}")
    named = f"User {ROLE} has no {permission} permission on <table {table}>"
    wait_for(
        lambda: serving.failures("unauthorized") > before and named in serving.log()[logged:],
        timeout=30,
        message=f"after REVOKE {permission} ON {table}: {named!r} logged and counted",
        details=lambda: serving.log()[logged:][-3000:],
    )
    superuser.execute(statement)
    # Back to no unauthorized failure, and every probe logs its next failure anew.
    wait_for(quiet(serving, "unauthorized", 3.0), timeout=30,
             message=f"no unauthorized failures after GRANT {permission} ON {table}",
             details=lambda: serving.log()[logged:][-3000:])
    all_succeed(serving, f"after GRANT {permission} ON {table}", timeout=30)


def test_each_grant_revoked_is_named_and_counted_unauthorized(
    serving: Serving, superuser: Session
) -> None:
    all_succeed(serving, "before revoking")
    assert len(serving.grants) >= 10
    for statement in serving.grants:
        revoke_and_grant_again(serving, superuser, statement)
    assert serving.failures("auth") == 0 and serving.failures("tls") == 0


def set_password(superuser: Session, password: str) -> bool:
    """Change the role's password; False while Cassandra refuses a change this soon after
    the last (it allows one per 5 s)."""
    try:
        superuser.execute(f"ALTER ROLE {ROLE} WITH PASSWORD = '{password}'")
    except NoHostAvailable as exc:
        if "can only be changed every" in str(exc):
            return False
        raise
    return True


def test_credentials_refused_under_a_running_exporter_are_counted_auth_and_retried(
    serving: Serving, superuser: Session, auth_cluster: TestbedCluster
) -> None:
    """A rotation under way: the role's password changes, the exporter keeps its sessions;
    a node it must log in to again refuses it (reason auth), until the password matches."""
    dc = auth_cluster.read_datacenters[-1]
    labels = {"cassandra_datacenter": dc, "reason": "auth"}

    def refused() -> float:
        return sum(s.value for s in serving.samples()
                   if s.name == "cqrs_datacenter_reachability_failures_total"
                   and s.labels == labels)

    wait_for(lambda: set_password(superuser, "rotated-password"), timeout=30,
             message="the password rotated")
    try:
        # The node drops its client connections: the exporter must log in to it again.
        auth_cluster.nodetool(dc, "disablebinary")
        auth_cluster.nodetool(dc, "enablebinary")
        wait_for(lambda: refused() > 2, timeout=60, message=f"reachability of {dc}: auth",
                 details=lambda: serving.log()[-3000:])
        assert f"cluster.auth: Cassandra refused the credentials of user '{ROLE}'" in serving.log()
        assert serving.process.poll() is None, "the exporter keeps running"
    finally:
        wait_for(lambda: set_password(superuser, PASSWORD), timeout=30,
                 message="the first password restored")
    wait_for(quiet(serving, "auth", 3.0), timeout=60, message="no more auth failures",
             details=lambda: serving.log()[-3000:])
    all_succeed(serving, "once the password matches again", timeout=60)


def test_a_wrong_password_at_start_ends_serve_with_one_line(
    auth_cluster: TestbedCluster, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("not-the-password")
    config = exporter_config(auth_cluster, password_file)
    config["server"] = {"log_level": "WARNING"}  # INFO would add "listening on ..." first
    result = serve_until_exit(config, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # The testbed's auth cluster has no TLS: one warning says the password crosses the
    # network in clear text, then the error itself in one line.
    warning, line = result.stderr.splitlines()
    assert "cluster.auth is set but cluster.tls.enabled is false" in warning, result.stderr
    assert line.startswith(
        f"cqrs-exporter: cluster.auth: Cassandra refused the credentials of user '{ROLE}' "
        f"(Provided username {ROLE} and/or password are incorrect) on "
    ), line
