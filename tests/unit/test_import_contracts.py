"""The import contracts in pyproject.toml hold, and each one fails when its line is crossed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("exporter", "probes", "testbed")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Check the contracts on the packages under `root` (found there first on the path)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("exporter/cli.py", "import testbed", "The product never imports the testbed"),
        (
            "probes/reachability.py",
            "import exporter.service",
            "Probes use only the probe API, never the service side",
        ),
        (
            "exporter/app.py",
            "import probes.latency.probe",
            "The service side reaches probes only through the registry",
        ),
        (
            "probes/latency/probe.py",
            "import probes.replication.rows",
            "Probe families are independent of each other",
        ),
        ("testbed/errors.py", "import testbed.cluster", "No import cycles between modules"),
    ],
)
def test_a_planted_import_breaks_its_contract(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{planted}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout, result.stdout
