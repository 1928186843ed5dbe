"""The configuration files each testbed node is started with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIN_TOKEN = -(2**63)


def initial_token(index: int, node_count: int) -> int:
    """An evenly spaced Murmur3 token for node `index` of `node_count`."""
    return MIN_TOKEN + index * (2**64 // node_count)


@dataclass(frozen=True)
class ClientEncryption:
    """TLS on a node's CQL port: its PKCS12 stores, and whether clients need certificates."""

    keystore: Path
    keystore_password: str
    truststore: Path
    truststore_password: str
    require_client_auth: bool


@dataclass(frozen=True)
class NodeLayout:
    """Everything that goes into one node's cassandra.yaml."""

    cluster_name: str
    address: str
    broadcast_address: str
    seed: str
    token: int
    storage_port: int
    native_port: int
    data_dir: Path
    commitlog_dir: Path
    hints_dir: Path
    saved_caches_dir: Path
    cdc_raw_dir: Path
    password_auth: bool
    client_encryption: ClientEncryption | None = None


def client_encryption_yaml(encryption: ClientEncryption | None) -> str:
    """The client_encryption_options of cassandra.yaml: TLS only, or none at all."""
    if encryption is None:
        return ""
    return f"""\
# TLS only on the CQL port (optional: false), with certificates made at start.
client_encryption_options:
  enabled: true
  optional: false
  store_type: PKCS12
  keystore: {encryption.keystore}
  keystore_password: '{encryption.keystore_password}'
  truststore: {encryption.truststore}
  truststore_password: '{encryption.truststore_password}'
  require_client_auth: {str(encryption.require_client_auth).lower()}
"""


def cassandra_yaml(layout: NodeLayout) -> str:
    """A cassandra.yaml for a small, quick-starting test node."""
    if layout.password_auth:
        authenticator = "org.apache.cassandra.auth.PasswordAuthenticator"
        authorizer = "org.apache.cassandra.auth.CassandraAuthorizer"
    else:
        authenticator = "org.apache.cassandra.auth.AllowAllAuthenticator"
        authorizer = "org.apache.cassandra.auth.AllowAllAuthorizer"
    return f"""\
cluster_name: '{layout.cluster_name}'
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: GossipingPropertyFileSnitch
# One token per node, given explicitly: no token allocation at start.
num_tokens: 1
initial_token: '{layout.token}'
auto_bootstrap: false
auto_snapshot: false
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{layout.seed}:{layout.storage_port}"
listen_address: {layout.address}
# Other nodes connect to the broadcast address: the replication proxy in front of the listen
# address when the testbed has one (nodes of the same datacenter use the listen address).
broadcast_address: {layout.broadcast_address}
listen_on_broadcast_address: false
rpc_address: {layout.address}
storage_port: {layout.storage_port}
native_transport_port: {layout.native_port}
start_native_transport: true
authenticator:
  class_name: {authenticator}
authorizer:
  class_name: {authorizer}
role_manager:
  class_name: org.apache.cassandra.auth.CassandraRoleManager
network_authorizer:
  class_name: org.apache.cassandra.auth.AllowAllNetworkAuthorizer
hinted_handoff_enabled: true
max_hint_window: 3h
hints_flush_period: 10000ms
data_file_directories:
  - {layout.data_dir}
commitlog_directory: {layout.commitlog_dir}
hints_directory: {layout.hints_dir}
saved_caches_directory: {layout.saved_caches_dir}
cdc_raw_directory: {layout.cdc_raw_dir}
# Group sync acknowledges a write only once it is synced, so a SIGKILLed node comes back
# with every write it acknowledged (periodic sync would lose what came after the last
# sync marker). The folder is in memory where the machine has a tmpfs (see
# Node.commitlog_dir), so the syncs cost no disk time.
commitlog_sync: group
commitlog_sync_group_window: 10ms
commitlog_total_space: 128MiB
commitlog_segment_size: 8MiB
# Small caches and few background threads: three nodes share two cores.
concurrent_compactors: 1
key_cache_size: 8MiB
counter_cache_size: 1MiB
memtable_heap_space: 64MiB
memtable_offheap_space: 64MiB
file_cache_size: 32MiB
user_defined_functions_enabled: false
materialized_views_enabled: false
""" + client_encryption_yaml(layout.client_encryption)


def rackdc_properties(datacenter: str) -> str:
    """cassandra-rackdc.properties placing the node in `datacenter`, rack1.

    prefer_local: nodes of one datacenter talk over their listen addresses, so only
    traffic between datacenters passes the replication proxies.
    """
    return f"dc={datacenter}\nrack=rack1\nprefer_local=true\n"


def logback_xml(log_dir: Path) -> str:
    """Logback config: INFO and above to <log_dir>/system.log, nothing on the console."""
    return f"""\
<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.FileAppender">
    <file>{log_dir}/system.log</file>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG"/>
  </root>
</configuration>
"""


def tools_logback_xml() -> str:
    """Logback config for nodetool: warnings to stderr only."""
    return """\
<configuration scan="false">
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder>
      <pattern>%-5level %date{HH:mm:ss.SSS} %msg%n</pattern>
    </encoder>
  </appender>
  <root level="WARN">
    <appender-ref ref="STDERR"/>
  </root>
</configuration>
"""
