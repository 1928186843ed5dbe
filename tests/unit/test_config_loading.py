"""Reading a config file: aliases count as the values they stand for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.config.loading import MAX_DEPTH, MAX_NODES, LoadError, load_yaml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_config_dumped_by_pyyaml_with_a_shared_value_loads(tmp_path: Path) -> None:
    shared = {"keyspace": "orders", "table": "by_id"}
    data = {"read_models": [{"name": "a", "source": shared}, {"name": "b", "source": shared}]}
    text = yaml.safe_dump(data)
    assert "&id001" in text and "*id001" in text  # what PyYAML writes for a value used twice
    assert load_yaml(write(tmp_path, text)) == data


def test_a_merge_key_loads(tmp_path: Path) -> None:
    text = "base: &base {interval: 5s, timeout: 1s}\nprobe:\n  <<: *base\n  interval: 10s\n"
    assert load_yaml(write(tmp_path, text))["probe"] == {"interval": "10s", "timeout": "1s"}


def test_aliases_expanding_past_the_value_limit_are_refused_before_expanding(
    tmp_path: Path,
) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(LoadError) as caught:
        load_yaml(write(tmp_path, "\n".join(lines) + "\n"))
    assert caught.value.message.startswith(f"more than {MAX_NODES} values (at line 5)")


def test_an_alias_nesting_past_the_depth_limit_is_refused(tmp_path: Path) -> None:
    deep = "[" * 20 + "x" + "]" * 20
    text = f"a: &a {deep}\nb: {'[' * 15}*a{']' * 15}\n"
    with pytest.raises(LoadError) as caught:
        load_yaml(write(tmp_path, text))
    assert caught.value.message == f"nested deeper than {MAX_DEPTH} levels at line 2"


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml(write(tmp_path, "a: &a [x, *a]\n"))
    assert "alias *a at line 1 refers to no finished anchor" in caught.value.message


def test_an_undefined_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml(write(tmp_path, "a: *nowhere\n"))
    assert "alias *nowhere at line 1" in caught.value.message
