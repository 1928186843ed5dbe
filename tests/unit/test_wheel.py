"""The wheel holds the product only: no testbed, benchmarks or tests."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = ("testbed/", "bench/", "tests/")


def test_the_wheel_ships_exporter_and_probes_and_nothing_of_the_harness(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--wheel-dir", str(tmp_path), str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = [name for name in names if name.startswith(LEFT_OUT)]
    assert shipped == [], f"the wheel ships {shipped[:5]}"
    top_level = {name.split("/")[0] for name in names if name.endswith(".py")}
    assert top_level == {"exporter", "probes"}
    assert "exporter/cli.py" in names
    assert any(name.startswith("probes/") and name.endswith("registry.py") for name in names)
