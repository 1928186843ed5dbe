"""Where a testbed node keeps its commit log: in memory where there is room, else on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.cluster import node as node_module
from testbed.cluster.node import Node

ROOM = 1
NO_ROOM = 1 << 62


def a_node(tmp_path: Path) -> Node:
    return Node(0, "us-east", "127.0.0.1", 7199, tmp_path / "home" / "us-east")


@pytest.fixture
def memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /dev/shm, with room for a commit log until `room` says otherwise."""
    folder = tmp_path / "shm"
    folder.mkdir()
    monkeypatch.setattr(node_module, "MEMORY_DIR", folder)
    monkeypatch.setattr(node_module, "MEMORY_ROOM", ROOM)
    return folder


@pytest.fixture
def room(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """`room(n)`: from now on a commit log needs n free bytes in memory."""
    return lambda needed: monkeypatch.setattr(node_module, "MEMORY_ROOM", needed)


def test_the_commit_log_goes_to_memory_where_it_has_room_and_is_released(
    tmp_path: Path, memory: Path
) -> None:
    node = a_node(tmp_path)
    assert node.commitlog_dir.parent.parent == memory
    assert node.data_dirs()["commitlog"] == node.commitlog_dir
    node.commitlog_dir.mkdir(parents=True)
    node.release_commitlog()
    assert list(memory.iterdir()) == []


def test_without_room_the_commit_log_stays_on_disk_and_a_chosen_one_is_kept(
    tmp_path: Path, memory: Path, room: Callable[[int], None]
) -> None:
    room(NO_ROOM)
    node = a_node(tmp_path)
    assert node.commitlog_dir == node.home / "commitlog"
    # A folder made while there was room stays the node's until released.
    room(ROOM)
    chosen = node.commitlog_dir
    assert chosen.parent.parent == memory
    chosen.mkdir(parents=True)
    room(NO_ROOM)
    assert node.commitlog_dir == chosen


def test_a_missing_memory_folder_keeps_the_commit_log_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_module, "MEMORY_DIR", tmp_path / "no-such-folder")
    node = a_node(tmp_path)
    assert node.commitlog_dir == node.home / "commitlog"
