"""TLS between the exporter and Cassandra, on testbeds whose CQL port speaks only TLS.

Two shapes, one after the other, of two datacenters each: `server` (the nodes present
certificates of the testbed's CA, each naming the node's IP address) and `mutual` (they
also require a client certificate of that CA). The exporter verifies the CA and each node's
address; a wrong CA, an address the certificate does not name and a missing client
certificate each fail with a message that says which.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cassandra.cluster import NoHostAvailable

from exporter.config import parse_config
from exporter.connection import CassandraConnection
from exporter.tls import TlsError
from testbed.cluster import TestbedCluster
from tests.support import answering_connection, free_port, merge, serve_command
from tests.tls_support import forwarder

pytestmark = pytest.mark.cluster

DATACENTERS = ("us-east", "eu-west")
# Another address on the loopback, forwarded to the write datacenter's node: the same node
# under a name its certificate does not carry (a load balancer, a NAT address).
FORWARD_HOST = 250


def failures(metrics: str) -> str:
    """The probe failure counters that have counted something, one per line."""
    return "\n".join(
        line for line in metrics.splitlines()
        if line.startswith("cqrs_probe_failures_total{") and not line.endswith(" 0.0")
    )


def config_for(cluster: TestbedCluster, **tls: Any) -> dict[str, Any]:
    """An exporter config for `cluster` that trusts its CA (and, under mutual TLS, presents
    its client certificate); `tls` overrides keys of cluster.tls."""
    material = cluster.tls_material
    assert material is not None
    client: dict[str, Any] = {"enabled": True, "ca_file": str(material.ca_cert)}
    if cluster.tls == "mutual":
        client |= {"cert_file": str(material.client_cert), "key_file": str(material.client_key)}
    return {
        "cluster": {
            "contact_points": list(cluster.contact_points),
            "connect_timeout": "5s",
            "tls": {key: value for key, value in (client | tls).items() if value is not None},
        },
        "datacenters": {
            "write": cluster.write_datacenter,
            "read": list(cluster.read_datacenters),
        },
        "monitoring": {"create_schema": True, "replication_factor": 1},
    }


async def refusal(config: dict[str, Any]) -> str:
    """The message of the exporter's failed connection attempt under `config`."""
    connection = CassandraConnection(parse_config(config))
    try:
        with pytest.raises(TlsError) as caught:
            await connection.connect()
    finally:
        await connection.close()
    return str(caught.value)


def forwarded_address(cluster: TestbedCluster) -> str:
    return f"{cluster.net}.{FORWARD_HOST}"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Served:
    """A real `cqrs-exporter serve` on a free port, its stderr in a file."""

    def __init__(self, config: dict[str, Any], tmp_path: Path) -> None:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp_path / "stderr.log"
        with self.log.open("w") as err:
            self.process = subprocess.Popen(
                serve_command(path, self.url.removeprefix("http://")),
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait(self, check: Any, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.process.poll() is None, f"serve exited: {self.log.read_text()}"
            assert time.monotonic() < deadline, f"{message} within {timeout:g} s"
            time.sleep(0.5)

    def get(self, path: str) -> tuple[int, str]:
        try:
            return get(self.url + path)
        except OSError:
            return 0, ""

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text()


class TestServerTls:
    """The nodes present certificates; clients need none."""

    @pytest.fixture
    def testbed(self, testbed_of: Callable[..., TestbedCluster]) -> TestbedCluster:
        return testbed_of(datacenters=DATACENTERS, tls="server")

    def test_serve_connects_verifying_the_ca_and_each_nodes_address(
        self, testbed: TestbedCluster, tmp_path: Path
    ) -> None:
        fast = {"probes": {"reachability": {"interval": "1s", "timeout": "800ms"}}}
        served = Served(merge(config_for(testbed), fast), tmp_path)
        try:
            served.wait(lambda: served.get("/health/ready")[0] == 200, 90, "ready")
            reachable = [f'cqrs_datacenter_reachable{{cassandra_datacenter="{dc}"}} 1.0'
                         for dc in DATACENTERS]
            served.wait(
                lambda: all(line in served.get("/metrics")[1] for line in reachable),
                30,
                "every datacenter reachable over TLS",
            )
            assert 'cqrs_probe_success{probe="reachability"} 1.0' in served.get("/metrics")[1]
        finally:
            log = served.stop()
        assert "Traceback" not in log
        assert "cannot connect" not in log

    async def test_a_ca_that_did_not_sign_the_nodes_certificates_is_refused(
        self, testbed: TestbedCluster
    ) -> None:
        material = testbed.tls_material
        assert material is not None
        config = config_for(testbed, ca_file=str(material.other_ca_cert))
        message = await refusal(config)
        assert message.startswith(f"the certificate of {testbed.contact_points[0]}:9042")
        assert "is not signed by a trusted CA (certificate verify failed: self-signed " in message
        assert "set cluster.tls.ca_file" in message

    async def test_an_address_the_certificate_does_not_name_is_refused_unless_unchecked(
        self, testbed: TestbedCluster
    ) -> None:
        address = forwarded_address(testbed)
        with forwarder((address, 9042), (testbed.contact_points[0], 9042)):
            config = merge(config_for(testbed), {"cluster": {"contact_points": [address]}})
            message = await refusal(config)
            assert message == (
                f"the certificate of {address}:9042 does not name the address connected to "
                "(certificate verify failed: IP address mismatch, certificate is not valid for "
                f"'{address}'): connect to a name or address in its subject alternative names, "
                "or set cluster.tls.verify_hostname: false"
            )
            unchecked = merge(config, {"cluster": {"tls": {"verify_hostname": False}}})
            connection = CassandraConnection(parse_config(unchecked))
            try:
                await connection.connect()
                rows = await connection.execute(
                    "SELECT data_center FROM system.local", datacenter=testbed.write_datacenter
                )
                assert [row.data_center for row in rows] == [testbed.write_datacenter]
            finally:
                await connection.close()

    async def test_a_client_without_tls_is_refused(self, testbed: TestbedCluster) -> None:
        plain = config_for(testbed)
        del plain["cluster"]["tls"]
        connection = CassandraConnection(parse_config(plain))
        try:
            with pytest.raises(NoHostAvailable):
                await connection.connect()
        finally:
            await connection.close()


class TestMutualTls:
    """The nodes also require a client certificate of the testbed's CA."""

    @pytest.fixture
    def testbed(self, testbed_of: Callable[..., TestbedCluster]) -> TestbedCluster:
        return testbed_of(datacenters=DATACENTERS, tls="mutual")

    async def test_the_client_certificate_of_the_ca_is_accepted_in_every_datacenter(
        self, testbed: TestbedCluster
    ) -> None:
        connection = await answering_connection(parse_config(config_for(testbed)), timeout=60)
        try:
            for dc in DATACENTERS:
                rows = await connection.execute(
                    "SELECT data_center FROM system.local", datacenter=dc
                )
                assert [row.data_center for row in rows] == [dc]
        finally:
            await connection.close()

    async def test_without_a_client_certificate_the_connection_is_refused(
        self, testbed: TestbedCluster
    ) -> None:
        message = await refusal(config_for(testbed, cert_file=None, key_file=None))
        # The node's alert, or the end of the connection when the client writes first (a
        # race under TLS 1.3: see exporter.tls); both name the missing certificate.
        node = f"{testbed.contact_points[0]}:9042"
        assert message.startswith(
            (
                f"{node} requires a client certificate (tlsv13 alert certificate required): ",
                f"{node} closed the TLS connection as it opened (EOF occurred in violation of "
                "protocol): it may require a client certificate: ",
            )
        ), message
        assert "set cluster.tls.cert_file and cluster.tls.key_file" in message

    def test_serve_without_a_client_certificate_says_why_and_is_not_ready(
        self, testbed: TestbedCluster, tmp_path: Path
    ) -> None:
        config = merge(
            config_for(testbed, cert_file=None, key_file=None),
            {"probes": {"startup_grace": "2s", "reachability": {"interval": "1s",
                                                                  "timeout": "800ms"}}},
        )
        served = Served(config, tmp_path)
        try:
            served.wait(
                lambda: "cannot connect" in served.log.read_text(), 60, "the refusal logged"
            )
            assert served.get("/health/ready")[0] == 503
            # Once the grace is over the probes run, and their failures say why: tls.
            served.wait(
                lambda: 'reason="tls"' in failures(served.get("/metrics")[1]), 60,
                "probe failures counted as tls",
            )
            assert 'reason="unavailable"' not in failures(served.get("/metrics")[1])
        finally:
            log = served.stop()
        assert "Traceback" not in log
        line = next(line for line in log.splitlines() if "cannot connect" in line)
        assert "cannot connect to Cassandra (127.0.0.1:9042 " in line
        assert "client certificate" in line and "set cluster.tls.cert_file" in line
