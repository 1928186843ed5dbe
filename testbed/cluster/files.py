"""Each node's folders and configuration, written afresh before a cluster starts."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from testbed import config_files
from testbed.cluster.node import Node


def write_node_files(
    base_dir: Path,
    nodes: Sequence[Node],
    *,
    cluster_name: str,
    password_auth: bool,
    client_encryption: Mapping[str, config_files.ClientEncryption] | None = None,
) -> None:
    """Wipe each node's home and write its conf/ and empty data folders; the first is the seed.

    `client_encryption` gives, by node address, the TLS of each node's CQL port.
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    # Keep the runtime folder out of version control wherever it is created.
    ignore = base_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    seed = nodes[0].broadcast_address
    for node in nodes:
        if node.home.exists():
            shutil.rmtree(node.home)
        node.conf_dir.mkdir(parents=True)
        node.log_dir.mkdir()
        node.release_commitlog()
        dirs = node.data_dirs()
        for path in dirs.values():
            path.mkdir(parents=True)
        layout = config_files.NodeLayout(
            cluster_name=cluster_name,
            address=node.address,
            broadcast_address=node.broadcast_address,
            seed=seed,
            token=config_files.initial_token(node.index, len(nodes)),
            storage_port=node.storage_port,
            native_port=node.native_port,
            data_dir=dirs["data"],
            commitlog_dir=dirs["commitlog"],
            hints_dir=dirs["hints"],
            saved_caches_dir=dirs["saved_caches"],
            cdc_raw_dir=dirs["cdc_raw"],
            password_auth=password_auth,
            client_encryption=(client_encryption or {}).get(node.address),
        )
        node.config_path.write_text(config_files.cassandra_yaml(layout))
        node.rackdc_path.write_text(config_files.rackdc_properties(node.dc))
        node.logback_path.write_text(config_files.logback_xml(node.log_dir))
