"""Reading a config file into plain data, refusing what could hang or exhaust the exporter.

A file is refused with one line, before any of it is validated, when it is larger than
`MAX_CONFIG_BYTES` (checked while reading: a device or a pipe is never read to its end),
holds NUL bytes (binary), is not UTF-8, nests deeper than `MAX_DEPTH`, holds more than
`MAX_NODES` values, or repeats a key in one mapping (YAML would silently keep the last: a
whole section lost). Aliases (`*name`, as PyYAML writes for an object used twice) count as
the values they stand for, so a "billion laughs" document is refused by the same limits
before it expands; an alias to its own unfinished anchor is refused. The first three are
checked on the bytes, the next two on the parser's events, before any object is built.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_CONFIG_BYTES = 1024 * 1024
"""1 MiB: a config is a few kilobytes."""
MAX_DEPTH = 32
"""Nested mappings and lists: the deepest key of a valid config is six levels down."""
MAX_NODES = 20_000
"""Keys, values and list items: a config with a hundred read models holds a few thousand."""


class LoadError(Exception):
    """A file that is not a config; `where` is `(file)` or the key, `message` one line."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where it is installed (it is, with the wheels): ten times as fast."""
_OPENING = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSING = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


@dataclass
class _Open:
    """A mapping or list being read: its anchor, the values counted before it, its depth and
    the deepest level reached inside it (aliases expanded)."""

    anchor: str | None
    counted_before: int
    depth: int
    deepest: int


def _too_many(line: int) -> LoadError:
    return LoadError("(file)", f"more than {MAX_NODES} values (at line {line}): not a config")


def _too_deep(line: int) -> LoadError:
    return LoadError("(file)", f"nested deeper than {MAX_DEPTH} levels at line {line}")


def _check_events(text: str) -> None:
    """Refuse deep nesting and too many values from the parser's events alone, before
    anything is built, counting an alias as the values of its anchor: the checks stop at the
    first offence, however large the document would expand."""
    nodes = 0
    opened: list[_Open] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, levels) it stands for
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            line = event.start_mark.line + 1 if event.start_mark else 0
            depth = len(opened)
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise LoadError(
                        "(file)",
                        f"alias *{event.anchor} at line {line} refers to no finished anchor "
                        "(an undefined or recursive alias)",
                    )
                values, levels = anchors[event.anchor]
                nodes += values
                if depth + levels > MAX_DEPTH:
                    raise _too_deep(line)
                if opened:
                    opened[-1].deepest = max(opened[-1].deepest, depth + levels)
            elif isinstance(event, _OPENING):
                nodes += 1
                if depth + 1 > MAX_DEPTH:
                    raise _too_deep(line)
                opened.append(_Open(event.anchor, nodes - 1, depth + 1, depth + 1))
            elif isinstance(event, _CLOSING):
                done = opened.pop()
                if done.anchor is not None:
                    anchors[done.anchor] = (nodes - done.counted_before, done.deepest - depth + 1)
                if opened:
                    opened[-1].deepest = max(opened[-1].deepest, done.deepest)
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    anchors[event.anchor] = (1, 0)
            if nodes > MAX_NODES:
                raise _too_many(line)
    except yaml.YAMLError as exc:
        raise _malformed(exc) from None


def _read(path: Path) -> bytes:
    source = str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise LoadError("(file)", f"cannot read {source}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise LoadError("(file)", f"cannot read {source}: Is a directory")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        raise LoadError("(file)", f"cannot read {source}: not a regular file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise LoadError("(file)", f"{source} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        with open(path, "rb") as handle:  # a pipe: read no more than the cap allows
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise LoadError("(file)", f"cannot read {source}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise LoadError("(file)", f"{source} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    return data


def _decode(data: bytes) -> str:
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise LoadError("(file)", f"binary data (a NUL byte) at line {line}: not a YAML file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LoadError("(file)", f"not UTF-8 text: invalid byte at line {line}") from None


def _path(parent: str, key: Any) -> str:
    return f"{parent}.{key}" if parent else str(key)


def _check_duplicates(node: Node, where: str) -> None:
    """Refuse a key given twice in one mapping, naming it and both lines."""
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicates(item, f"{where}[{index}]")
    elif isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node.value, str) else None
            if key is None or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                raise LoadError(
                    _path(where, key),
                    f"duplicate key {key!r} at lines {seen[key]} and {line}: give it once",
                )
            seen[key] = line
            _check_duplicates(value_node, _path(where, key))


def _malformed(exc: yaml.YAMLError) -> LoadError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
    problem = getattr(exc, "problem", None) or "not YAML"
    if "nesting depth" in problem and mark:  # libyaml's own limit, met while looking ahead
        return LoadError("(file)", f"nested deeper than {MAX_DEPTH} levels at line {mark.line + 1}")
    return LoadError("(file)", f"malformed YAML at {where}: {problem}")


def load_yaml(path: str | Path) -> Any:
    """The file's data (mappings, lists, scalars), or LoadError naming the problem."""
    text = _decode(_read(Path(path)))
    _check_events(text)
    loader = _LOADER(text)
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_duplicates(node, "")
            return loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise _malformed(exc) from None
    finally:
        loader.dispose()
