"""The container image the chart runs, checked without a container engine: the Dockerfile's
stages, user and entrypoint, the hash-pinned install, and a wheel built from exactly what the
build stage copies."""

from __future__ import annotations

import fnmatch
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "cqrs-exporter"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@dataclass
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(path: Path) -> list[list[Instruction]]:
    """The instructions of each stage, continuation lines joined, comments dropped."""
    stages: list[list[Instruction]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stages.append([])
        if keyword.upper() == "ARG" and not stages:
            continue  # a global build argument, before the first stage
        stages[-1].append(Instruction(keyword.upper(), args.strip()))
    return stages


STAGES = parse_dockerfile(ROOT / "Dockerfile")
BUILD, FINAL = STAGES[0], STAGES[-1]


def only(stage: list[Instruction], keyword: str) -> str:
    (found,) = [i.args for i in stage if i.keyword == keyword]
    return found


def copies(stage: list[Instruction]) -> list[str]:
    """Every source path the stage COPYs from the build context (not from another stage)."""
    sources: list[str] = []
    for instruction in stage:
        if instruction.keyword == "COPY" and "--from=" not in instruction.args:
            words = [w for w in shlex.split(instruction.args) if not w.startswith("--")]
            sources += [w.rstrip("/") for w in words[:-1]]
    return sources


def test_two_stages_build_then_run() -> None:
    assert len(STAGES) == 2
    assert only(BUILD, "FROM").endswith(" AS build")
    assert only(FINAL, "FROM") == "${PYTHON_IMAGE}"
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG PYTHON_IMAGE=python:3.11-slim\n" in text
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_final_stage_runs_as_a_numeric_non_root_user_matching_the_chart() -> None:
    user = only(FINAL, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), "a numeric user lets the kubelet check runAsNonRoot"
    assert int(uid) > 0 and int(gid) > 0
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["securityContext"]["runAsUser"] == int(uid)
    assert values["securityContext"]["runAsGroup"] == int(gid)
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    # USER comes after every RUN, so nothing runs as root at start.
    keywords = [i.keyword for i in FINAL]
    assert max(n for n, k in enumerate(keywords) if k == "RUN") < keywords.index("USER")


def test_entrypoint_is_the_console_script_serving_the_mounted_config() -> None:
    assert json.loads(only(FINAL, "ENTRYPOINT")) == ["cqrs-exporter"]
    assert "cqrs-exporter" in PYPROJECT["project"]["scripts"]
    command = json.loads(only(FINAL, "CMD"))
    assert command == ["serve", "--config", "/etc/cqrs-exporter/config.yaml"]
    assert only(FINAL, "EXPOSE") == "9469"


def test_the_chart_runs_the_image_this_version_builds() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == PYPROJECT["project"]["version"]


VENV = "/opt/cqrs-exporter"


def test_final_stage_has_no_build_tools_and_takes_only_the_built_environment() -> None:
    assert copies(FINAL) == [], "the final stage copies no source"
    runs = " ".join(i.args for i in FINAL if i.keyword == "RUN")
    for tool in ("build-essential", "gcc", "apt-get install", "pip ", "git"):
        assert tool not in runs
    (copy,) = [i.args for i in FINAL if i.keyword == "COPY"]
    assert copy == f"--from=build {VENV} {VENV}"
    env = " ".join(i.args for i in FINAL if i.keyword == "ENV")
    assert f"PATH={VENV}/bin:$PATH" in env


def test_build_stage_installs_the_lock_with_hashes_then_the_project_without_dependencies() -> None:
    runs = [i.args for i in BUILD if i.keyword == "RUN"]
    pip = f"{VENV}/bin/pip install --no-cache-dir"
    locked = f"{pip} --require-hashes -r requirements.lock"
    (lock,) = [n for n, run in enumerate(runs) if locked in run]
    (project,) = [n for n, run in enumerate(runs) if f"{pip} --no-deps ." in run]
    assert lock < project
    assert f"{VENV}/bin/pip check" in runs[project]
    assert "[test]" not in " ".join(runs)
    # The lock is copied, and installed, before the source: its layer outlives code changes.
    keywords = [(i.keyword, i.args) for i in BUILD]
    assert keywords.index(("COPY", "requirements.lock ./")) < keywords.index(
        ("COPY", "pyproject.toml README.md ./")
    )


def package_dirs() -> set[str]:
    """The top-level packages pyproject.toml packages: `include = ["exporter*", ...]`."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.removesuffix("*") for pattern in include}


def test_build_stage_copies_exactly_what_pyproject_packages() -> None:
    expected = {
        "pyproject.toml",
        "requirements.lock",
        PYPROJECT["project"]["readme"],
        *package_dirs(),
    }
    assert set(copies(BUILD)) == expected


def test_dockerignore_lets_in_every_copied_path_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or fnmatch.fnmatch(path.split("/")[0], bare):
                keep = negated
        return keep

    for source in copies(BUILD):
        assert included(source), f"{source} is copied but .dockerignore leaves it out"
    for left_out in (
        ".venv", ".git", ".tools", "tests", "bench", "testbed", ".testbed", "dashboards"
    ):
        assert not included(left_out), f"{left_out} would be sent to the builder"
    assert not included("exporter/__pycache__")


def test_a_wheel_built_from_the_copied_files_holds_the_packages_and_the_entrypoint(
    tmp_path: Path,
) -> None:
    """What the build stage does, minus the engine: copy the same files, build the wheel."""
    context = tmp_path / "src"
    context.mkdir()
    for source in copies(BUILD):
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(
                path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(path, context / source)
    wheels = tmp_path / "wheels"
    # No build isolation: the test venv already has setuptools and wheel, so no download.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
    top_level = {n.split("/")[0] for n in names if n.endswith(".py")}
    assert top_level == package_dirs()
    assert "cqrs-exporter = exporter.cli:main" in entry_points
    # The runtime dependencies `pip check` holds the lock to are pyproject's, no more.
    installed = {
        (r.name, r.specifier)
        for r in map(Requirement, metadata.get_all("Requires-Dist") or [])
        if r.marker is None
    }
    dependencies = PYPROJECT["project"]["dependencies"]
    declared = {(r.name, r.specifier) for r in map(Requirement, dependencies)}
    assert installed == declared


@pytest.mark.parametrize("name", ["ENTRYPOINT", "CMD"])
def test_entrypoint_and_cmd_use_exec_form_so_signals_reach_the_exporter(name: str) -> None:
    assert only(FINAL, name).startswith("[")
