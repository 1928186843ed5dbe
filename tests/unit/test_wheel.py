"""The wheel holds the product only: no testbed, benchmarks or tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = ("testbed/", "bench/", "tests/")
# Local state that is not the source: a stale build/ in particular would be packed as well.
NOT_SOURCE = (".git", ".venv", ".tools", ".testbed", "build", "dist", "*.egg-info",
              "__pycache__", ".*_cache")


def test_the_wheel_ships_exporter_and_probes_and_nothing_of_the_harness(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--wheel-dir", str(wheels), ".",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = [name for name in names if name.startswith(LEFT_OUT)]
    assert shipped == [], f"the wheel ships {shipped[:5]}"
    top_level = {name.split("/")[0] for name in names if name.endswith(".py")}
    assert top_level == {"exporter", "probes"}
    assert "exporter/cli.py" in names
    assert any(name.startswith("probes/") and name.endswith("registry.py") for name in names)
