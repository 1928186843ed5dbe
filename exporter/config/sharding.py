"""Sharding: which share of the read models and declared queries this exporter runs.

Names are split like Prometheus' `hashmod` relabelling: the MD5 of the name, its last eight
bytes read as a big-endian unsigned integer, modulo the count. The replication probes run
in shard 0 only, so no sentinel or heartbeat is written twice; every shard runs reachability.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import Field, model_validator

from exporter.config.base import StrictModel


def hashmod(name: str, modulus: int) -> int:
    """Prometheus' `hashmod` of one value (model/relabel: md5, last 8 bytes, big-endian)."""
    digest = hashlib.md5(name.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


class ShardingConfig(StrictModel):
    """This exporter's shard: `index` of `count` (`serve --shard INDEX/COUNT` overrides it)."""

    index: int = Field(default=0, ge=0)
    """This exporter's shard, from 0; shard 0 also runs the replication probes."""
    count: int = Field(default=1, ge=1, le=1024)
    """How many exporters share the read models and declared queries."""

    @model_validator(mode="after")
    def _index_below_count(self) -> ShardingConfig:
        if self.index >= self.count:
            raise ValueError(f"index ({self.index}) must be below count ({self.count})")
        return self

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def runs_replication(self) -> bool:
        """Whether this shard writes sentinels and heartbeats (shard 0 alone)."""
        return self.index == 0

    def owns(self, name: str) -> bool:
        """Whether this shard runs the read model or declared query of that name."""
        return hashmod(name, self.count) == self.index


_SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(text: str) -> ShardingConfig:
    """`I/N` as `serve --shard` takes it; a ValueError says what is wrong."""
    match = _SHARD.match(text.strip())
    if match is None:
        raise ValueError(f"expected INDEX/COUNT such as 0/2, got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if index >= count:
        raise ValueError(f"index ({index}) must be below count ({count})")
    return ShardingConfig(index=index, count=count)
