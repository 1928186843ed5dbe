"""requirements.lock, the image's hash-pinned dependencies: it pins every runtime dependency
pyproject.toml declares at a version the declaration allows, and every pin carries hashes, so
`pip install --require-hashes` in the Dockerfile accepts it. `make lock` regenerates it."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# What the image runs: python:3.11-slim on Linux.
IMAGE_ENV = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux"}


@dataclass
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)


def parse_lock(text: str) -> list[Pin]:
    """The pins of a pip requirements file in the form `uv pip compile --generate-hashes`
    writes: `name==version [; marker] \\` followed by `--hash=sha256:...` lines."""
    pins: list[Pin] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        words = logical.split()
        hashes = [w.removeprefix("--hash=") for w in words if w.startswith("--hash=")]
        spec = " ".join(w for w in words if not w.startswith("--hash="))
        logical = ""
        requirement = Requirement(spec)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{spec}: not pinned to one version"
        pins.append(
            Pin(
                canonicalize_name(requirement.name),
                Version(specifier.version),
                requirement.marker,
                hashes,
            )
        )
    assert not logical, "the lock ends inside a continued line"
    return pins


PINS = parse_lock(LOCK.read_text(encoding="utf-8"))


def image_pins() -> dict[str, Pin]:
    """The pins pip installs in the image (their markers hold there), by name."""
    found: dict[str, Pin] = {}
    for pin in PINS:
        if pin.marker is None or pin.marker.evaluate(IMAGE_ENV):
            assert pin.name not in found, f"{pin.name} is pinned twice for the image"
            found[pin.name] = pin
    return found


def test_the_lock_is_made_by_make_lock() -> None:
    header = LOCK.read_text(encoding="utf-8").splitlines()[:2]
    assert header[1].strip() == "#    make lock"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^lock:", makefile, re.M)
    assert "--generate-hashes" in makefile
    assert "-o requirements.lock" in makefile


@pytest.mark.parametrize(
    "dependency", PYPROJECT["project"]["dependencies"], ids=lambda d: Requirement(d).name
)
def test_every_runtime_dependency_is_pinned_at_a_version_pyproject_allows(
    dependency: str,
) -> None:
    requirement = Requirement(dependency)
    pins = image_pins()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement.name} is not in requirements.lock: run `make lock`"
    assert requirement.specifier.contains(pins[name].version, prereleases=True), (
        f"requirements.lock pins {name}=={pins[name].version}, outside {requirement.specifier}: "
        "run `make lock`"
    )


def test_every_pin_has_sha256_hashes_so_pip_runs_in_hash_checking_mode() -> None:
    assert PINS
    for pin in PINS:
        assert pin.hashes, f"{pin.name} has no --hash"
        for digest in pin.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), (pin.name, digest)


def test_the_parser_refuses_what_pip_would_refuse_in_hash_checking_mode() -> None:
    """The checks above can fail: an unpinned line is an error, a missing hash is seen."""
    with pytest.raises(AssertionError, match="not pinned to one version"):
        parse_lock("aiohttp>=3.10 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    (pin,) = parse_lock("pyyaml==6.0.2\n    # via x\n")
    assert pin.hashes == []


def test_the_dockerfile_installs_from_the_lock_with_hashes_then_the_project_alone() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lock = text.index("pip install --no-cache-dir --require-hashes -r requirements.lock")
    project = text.index("pip install --no-cache-dir --no-deps .")
    assert lock < project
    assert "pip check" in text[project:]
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text(encoding="utf-8")
