"""Reading a config file into plain data, refusing what could hang or exhaust the exporter.

A file is refused with one line, before any of it is validated, when it is larger than
`MAX_CONFIG_BYTES` (checked while reading: a device or a pipe is never read to its end),
holds NUL bytes (binary), is not UTF-8, nests deeper than `MAX_DEPTH`, holds more than
`MAX_NODES` values, uses an alias (`*name`: aliases are refused altogether, so that no
"billion laughs" document expands), or repeats a key in one mapping (YAML would silently
keep the last: a whole section lost). The first three are checked on the bytes, the next
two on the parser's events, before any object is built.
"""

from __future__ import annotations

import os
import stat
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


def _check_events(text: str) -> None:
    """Refuse aliases, deep nesting and too many nodes from the parser's events alone, before
    anything is built: the checks stop at the first offence, however large the document."""
    depth = nodes = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent):
                raise LoadError(
                    "(file)",
                    f"alias *{event.anchor} at line {line}: aliases are not allowed in a "
                    "config (write the value out)",
                )
            if isinstance(event, _OPENING):
                depth += 1
                if depth > MAX_DEPTH:
                    message = f"nested deeper than {MAX_DEPTH} levels at line {line}"
                    raise LoadError("(file)", message)
            elif isinstance(event, _CLOSING):
                depth -= 1
            if isinstance(event, (*_OPENING, yaml.ScalarEvent)):
                nodes += 1
                if nodes > MAX_NODES:
                    raise LoadError(
                        "(file)", f"more than {MAX_NODES} values (at line {line}): not a config"
                    )
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
