"""Configs that could hurt the cluster or the exporter, one file per case in config_cases/.

Each case is refused by `cqrs-exporter check-config` with exit 2 and one line naming the key,
no traceback, and within 2 s. A case file starts with `#` lines that say how to run it:

- `# expect: TEXT`: the one error line contains TEXT (it starts with TEXT's key);
- `# args: ARGS`: more check-config arguments (`--resolve-secrets` reads the secrets,
  `--tls-files` the TLS files);
- `# env: NAME=VALUE`: set in the environment;
- `# write: NAME=CONTENT`: a file @TMP@/NAME holding CONTENT (`\\n` a newline, `@N` N bytes);
- `# mkfifo: NAME`: a FIFO @TMP@/NAME (nothing ever writes to it);
- `# pad: N`: N more bytes of comment at the end of the file;
- `# flood: N`: a key at the end holding a list of N numbers;
- `# secret: VALUE`: a secret the case holds, which no output may repeat.

@TMP@ in a case stands for its scratch directory, @FILE@ for the config file's path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config

CASES = sorted((Path(__file__).parent / "config_cases").glob("*.yaml"))
REFUSED_WITHIN = 2.0
"""Seconds: how long refusing a case may take (in the process, without start-up)."""

CATEGORIES = [
    "binary", "non_utf8", "huge", "nested", "alias_bomb", "duplicate_section", "empty_secret_env",
    "empty_secret_file", "fifo_secret", "device_secret", "pasted_secret_as_env_name",
    "overflowing_interval", "negative_replication_factor", "zero_replication_factor",
    "unknown_dc_replication_factor", "injected_datacenter", "bad_keyspace", "bad_role",
    "truncate_sentinel_write", "drop_sentinel_write", "grant_sentinel_write", "delete_as_read",
    "select_then_drop", "missing_tls_file", "unparseable_tls_file", "tls_options_while_disabled",
    "too_many_values", "nested_mappings",
]


@dataclass
class Case:
    path: Path
    expect: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    fifos: list[str] = field(default_factory=list)
    pad: int = 0
    flood: int = 0
    secrets: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Case:
        case = cls(path)
        for raw in path.read_bytes().split(b"\n"):
            if not raw.startswith(b"# "):
                break
            name, _, value = raw.decode("utf-8")[2:].partition(": ")
            if name == "expect":
                case.expect = value
            elif name == "args":
                case.args += value.split()
            elif name in ("env", "write"):
                key, _, content = value.partition("=")
                (case.env if name == "env" else case.files)[key] = content
            elif name == "mkfifo":
                case.fifos.append(value)
            elif name == "pad":
                case.pad = int(value)
            elif name == "flood":
                case.flood = int(value)
            elif name == "secret":
                case.secrets.append(value)
        return case

    def prepare(self, tmp: Path) -> Path:
        """Write the config and what it refers to into `tmp`; the config's path."""
        config = tmp / self.path.name
        data = self.path.read_bytes().replace(b"@TMP@", str(tmp).encode())
        if self.pad:
            data += b"#" + b"x" * self.pad + b"\n"
        if self.flood:
            data += b"flood: [" + b",".join([b"0"] * self.flood) + b"]\n"
        config.write_bytes(data)
        for name, content in self.files.items():
            text = "x" * int(content[1:]) if content.startswith("@") else content
            (tmp / name).write_text(text.replace("\\n", "\n"))
        for name in self.fifos:
            os.mkfifo(tmp / name)
        return config

    def expected(self, tmp: Path, config: Path) -> str:
        return self.expect.replace("@TMP@", str(tmp)).replace("@FILE@", str(config))


def test_every_category_has_a_case() -> None:
    names = {path.stem for path in CASES}
    assert set(CATEGORIES) <= names, sorted(set(CATEGORIES) - names)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_check_config_refuses_the_case_in_one_line(path: Path, tmp_path: Path) -> None:
    case = Case.read(path)
    assert case.expect, f"{path.name} has no '# expect:' line"
    config = case.prepare(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")} | case.env
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", *case.args, str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    header, *errors = result.stderr.splitlines()
    assert header == f"{config}: invalid configuration"
    assert len(errors) == 1, errors
    (line,) = errors
    expected = case.expected(tmp_path, config)
    assert expected in line
    key = expected.split(": ", 1)[0]
    assert line.startswith(f"{key}: "), f"{line!r} does not name {key}"
    for secret in case.secrets:
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_the_case_is_refused_within_two_seconds(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timed in the process, so that a loaded machine's interpreter start-up is not counted."""
    case = Case.read(path)
    config = case.prepare(tmp_path)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(
            config,
            resolve_secrets="--resolve-secrets" in case.args,
            read_tls_files="--tls-files" in case.args,
        )
    elapsed = time.monotonic() - started
    assert elapsed < REFUSED_WITHIN, f"{elapsed:.2f}s"
    assert [case.expected(tmp_path, config) in line for line in caught.value.errors] == [True]
