"""The set-up behind the README's two commands: what calls it, what it covers, what it does.

Nothing here installs anything. `make -n` shows what each command would run; the set-up
script runs against stand-ins for dpkg-query, apt-get, id, make and go on PATH, with its
tools folder and jar cache in a temporary folder, so every case (all present, something
missing, not root) is played without touching the machine.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed import jars

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup.sh"
CI = ROOT / ".ci" / "run"
README = ROOT / "README.md"
PARTS = ("unit", "run", "test")
TIERS = ("tests/unit", "tests/chart", "tests/cluster", "tests/e2e", "tests/production")
SETUP_TESTS = re.compile(r"tests/unit/test_setup\w*\.py$")

# What the issue asks each part to install. The set-up may grow; it may not lose one of these.
DEBIAN = {
    "unit": {"prometheus"},
    "run": {"openjdk-17-jdk-headless", "maven", "prometheus"},
    "test": {"openjdk-17-jdk-headless", "maven", "prometheus", "wrk", "chromium"},
}
GO = {
    "unit": {},
    "run": {"toxiproxy-server": "v2.5.0", "toxiproxy-cli": "v2.5.0"},
    "test": {
        "helm": "v3.22.0",
        "kubeconform": "v0.7.0",
        "toxiproxy-server": "v2.5.0",
        "toxiproxy-cli": "v2.5.0",
    },
}
GO_MODULES = {
    "helm": "helm.sh/helm/v3",
    "kubeconform": "github.com/yannh/kubeconform",
    "toxiproxy-server": "github.com/Shopify/toxiproxy/v2",
    "toxiproxy-cli": "github.com/Shopify/toxiproxy/v2",
}


def listing(part: str) -> list[tuple[str, str]]:
    """`setup.sh --for PART --list`: (kind, rest of the line) pairs."""
    result = subprocess.run(
        ["bash", str(SETUP), "--for", part, "--list"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return [tuple(line.split(" ", 1)) for line in result.stdout.splitlines()]  # type: ignore[misc]


def needs(part: str) -> tuple[set[str], dict[str, str]]:
    """The Debian packages and the Go tools (name: version) a part sets up."""
    items = listing(part)
    debian = {rest for kind, rest in items if kind == "debian"}
    go = dict(rest.split(" ", 1) for kind, rest in items if kind == "go")
    return debian, go


# --- who calls the set-up --------------------------------------------------------------------


def readme_commands() -> list[str]:
    """The commands in the README's "Two commands" section, as a newcomer would type them."""
    text = README.read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_gives_make_run_and_make_test_as_its_two_commands() -> None:
    assert readme_commands() == ["make run", "make test"]


def test_ci_runs_the_readme_test_command_and_installs_nothing_itself() -> None:
    # The script's commands, without comments and quoted text (what it prints).
    code = [
        re.sub(r"'[^']*'|\"[^\"]*\"", "''", line.split("#", 1)[0]).strip()
        for line in CI.read_text().splitlines()[1:]
    ]
    code = [line for line in code if line]
    invoked = [word for line in code for word in re.findall(r"\bmake [\w-]+", line)]
    assert invoked == ["make test"]
    assert set(invoked) <= set(readme_commands())
    for word in (r"\bapt", r"\bpip3?\b", r"\bgo\b", r"\bmvn\b", r"\bpython", r"scripts/",
                 r"\.venv", r"\binstall", r"\bjars\b", r"\btestbed\b"):
        assert not [line for line in code if re.search(word, line)], f"{CI} runs {word} itself"


def make_dry_run(target: str) -> list[str]:
    """What `make TARGET` would run, in order (recursive makes included)."""
    # Without the caller's make state or pytest arguments (`make test PYTEST_ARGS=...`).
    ignored = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTEST_ARGS")
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    return result.stdout.splitlines()


def position(lines: list[str], pattern: str) -> int:
    """The index of the first line matching `pattern`; fails naming it when none does."""
    for index, line in enumerate(lines):
        if re.search(pattern, line):
            return index
    pytest.fail(f"no line matches {pattern!r} in:\n" + "\n".join(lines))


def tiers_on_disk() -> set[str]:
    return {
        f"tests/{folder.name}"
        for folder in (ROOT / "tests").iterdir()
        if folder.is_dir() and any(folder.rglob("test_*.py"))
    }


def test_make_test_sets_up_then_checks_then_runs_every_tier() -> None:
    lines = make_dry_run("test")
    steps = [
        r"scripts/setup\.sh --for test$",
        r"cqrs-exporter generate --check$",
        r"ruff check \.$",
        r"/mypy$",
        r"/lint-imports$",
        r"/pytest .*tests/",
    ]
    positions = [position(lines, step) for step in steps]
    assert positions == sorted(positions), lines
    pytest_words = shlex.split(lines[positions[-1]])
    assert [word for word in pytest_words if word.startswith("tests")] == list(TIERS)
    assert set(TIERS) == tiers_on_disk()


def test_make_run_sets_up_for_run_then_starts_the_demo() -> None:
    lines = make_dry_run("run")
    setup = position(lines, r"scripts/setup\.sh --for run$")
    demo = position(lines, r"\.venv/bin/python -m testbed demo$")
    assert setup < demo
    assert len(lines) == 2, lines


def test_make_test_unit_sets_up_only_the_unit_part_then_runs_the_unit_tier() -> None:
    lines = make_dry_run("test-unit")
    setup = position(lines, r"scripts/setup\.sh --for unit$")
    tier = position(lines, r"/pytest +tests/unit$")
    assert setup < tier
    assert len(lines) == 2, lines


# --- what the set-up covers ------------------------------------------------------------------


@pytest.mark.parametrize("part", PARTS)
def test_each_part_sets_up_what_the_issue_names(part: str) -> None:
    debian, go = needs(part)
    assert DEBIAN[part] <= debian
    assert {name: go[name] for name in GO[part] if name in go} == GO[part]
    kinds = {kind for kind, _ in listing(part)}
    assert "venv" in kinds
    assert ("jars" in kinds) == (part != "unit"), "the jars are for the cluster, not unit tests"
    assert ("schemas" in kinds) == (part == "test")


@pytest.mark.parametrize("part", PARTS)
def test_a_part_needs_everything_the_smaller_parts_need(part: str) -> None:
    debian, go = needs(part)
    smaller = {"unit": (), "run": ("unit",), "test": ("unit", "run")}[part]
    for other in smaller:
        other_debian, other_go = needs(other)
        assert other_debian <= debian
        assert other_go.items() <= go.items()


# Where a program is run from the code: a fixed path, a PATH lookup, a chart tool, or a name
# that is a program wherever it appears.
RUNS = (
    re.compile(r"/usr/bin/([\w.+-]+)"),
    re.compile(r"shutil\.which\(\s*[\"']([\w.+-]+)[\"']"),
    re.compile(r"\btool\(\s*[\"']([\w.+-]+)[\"']"),
    re.compile(r"\b(wrk|chromium|toxiproxy-server|toxiproxy-cli|kubeconform|promtool|mvn)\b"),
)
JDK = re.compile(r"/usr/lib/jvm/java-(\d+)-openjdk")
# Program -> what provides it: ("debian", package) or ("go", tool in .tools/bin).
PROVIDERS = {
    "promtool": ("debian", "prometheus"),
    "prometheus": ("debian", "prometheus"),
    "wrk": ("debian", "wrk"),
    "chromium": ("debian", "chromium"),
    "mvn": ("debian", "maven"),
    "helm": ("go", "helm"),
    "kubeconform": ("go", "kubeconform"),
    "toxiproxy-server": ("go", "toxiproxy-server"),
    "toxiproxy-cli": ("go", "toxiproxy-cli"),
}
# Always there on Debian 12 (essential or required packages) or in the venv.
BASE = {"setpriv", "env", "sh", "bash", "python", "python3"}


def sources() -> Iterator[tuple[Path, tuple[str, ...]]]:
    """Each file that runs programs, with the parts that must provide them."""
    for path in sorted((ROOT / "tests").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if SETUP_TESTS.search(relative):
            continue  # this file names every tool on purpose
        yield path, ("unit", "test") if relative.startswith("tests/unit/") else ("test",)
    for path in sorted((ROOT / "bench").rglob("*.py")):
        yield path, ("test",)
    # The testbed serves the demo (`make run`) and every cluster test (`make test`).
    for path in sorted((ROOT / "testbed").rglob("*.py")):
        yield path, ("run", "test")


def test_every_program_the_tests_the_benchmarks_and_the_testbed_run_is_set_up() -> None:
    provided = {part: needs(part) for part in PARTS}
    missing: list[str] = []
    found: set[str] = set()
    for path, parts in sources():
        text = path.read_text()
        wanted = {
            ("debian", f"openjdk-{version}-jdk-headless") for version in JDK.findall(text)
        }
        for pattern in RUNS:
            for program in pattern.findall(text):
                if program in BASE:
                    continue
                if program not in PROVIDERS:
                    missing.append(
                        f"{path.relative_to(ROOT)} runs {program}, which no set-up part "
                        "provides: add it to scripts/setup.sh and to PROVIDERS here"
                    )
                    continue
                found.add(program)
                wanted.add(PROVIDERS[program])
        for kind, name in sorted(wanted):
            for part in parts:
                debian, go = provided[part]
                if name not in (debian if kind == "debian" else go):
                    missing.append(f"{path.relative_to(ROOT)} needs {kind} {name} in --for {part}")
    assert not missing, "\n".join(missing)
    # The scan sees what the suite runs today; if it saw none of it, it would prove nothing.
    assert {"promtool", "prometheus", "helm", "kubeconform", "mvn", "wrk"} <= found


def test_the_unit_tier_tools_are_installed_here() -> None:
    """promtool is the one program the unit tier runs; without it, say how to install it."""
    result = subprocess.run(
        ["bash", str(SETUP), "--for", "unit", "--dry-run"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert "Debian packages" not in result.stdout, (
        "the unit tier runs /usr/bin/promtool from the Debian package prometheus: run "
        f"`make test-unit` as root, or `sudo apt-get install prometheus`\n{result.stdout}"
    )


# --- what the set-up does, against stand-ins --------------------------------------------------

STAND_INS = {
    # Installed packages are the words of $FAKE/installed; the query prints as dpkg-query -W
    # -f='${Package} ${db:Status-Status}\n' does.
    "dpkg-query": r"""
for package; do
    case $package in -*) continue ;; esac
    if grep -qw -- "$package" "$FAKE/installed"; then echo "$package installed"
    else echo "$package not-installed"; fi
done
""",
    "apt-get": r"""
echo "apt-get $*" >>"$FAKE/log"
if [ "$1" != update ]; then
    for word; do case $word in -*|install) ;; *) echo "$word" >>"$FAKE/installed" ;; esac; done
fi
""",
    "id": r"""echo "$FAKE_UID" """,
    "make": r"""
case " $* " in *" -q "*) exit "$(cat "$FAKE/venv-stale")" ;; esac
echo "make $*" >>"$FAKE/log"
""",
    # `go version -m` prints the module lines a stand-in binary holds; `go install` writes one.
    "go": r"""
if [ "$1" = version ]; then cat "$3"; exit; fi
echo "go $*" >>"$FAKE/log"
[ ! -e "$FAKE/go-fails" ] || { echo "go: build failed" >&2; exit 1; }
target=${@: -1}; package=${target%@*}; version=${target##*@}
printf 'mod\t%s\t%s\n' helm.sh/helm/v3 "$version" github.com/yannh/kubeconform "$version" \
    github.com/Shopify/toxiproxy/v2 "$version" >"$GOBIN/${package##*/}"
chmod +x "$GOBIN/${package##*/}"
""",
    "mvn": "exit 0",
}


@dataclass
class Machine:
    """A make-believe machine for the set-up script: what is installed, and what was run."""

    folder: Path
    env: dict[str, str]

    @property
    def tools(self) -> Path:
        return self.folder / "tools"

    def install_debian(self, *packages: str) -> None:
        with (self.folder / "installed").open("a") as installed:
            installed.writelines(f"{package}\n" for package in packages)

    def build_go(self, name: str, version: str) -> None:
        binary = self.tools / "bin" / name
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text(f"mod\t{GO_MODULES[name]}\t{version}\n")
        binary.chmod(0o755)

    def fetch_schemas(self, part: str) -> None:
        (stamp,) = [rest for kind, rest in listing(part) if kind == "schemas"]
        folder = self.tools / "kubernetes-json-schema"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".installed").write_text(stamp + "\n")

    def fetch_jars(self) -> None:
        lib = Path(self.env["CQRS_TESTBED_CACHE"])
        lib.mkdir(parents=True, exist_ok=True)
        (lib / f"cassandra-all-{jars.DEFAULT_VERSION}.jar").write_bytes(b"")
        (lib / jars.MARKER).write_text(
            f"org.apache.cassandra:cassandra-all:{jars.DEFAULT_VERSION}\n"
        )

    def venv_stale(self, stale: bool) -> None:
        (self.folder / "venv-stale").write_text("1" if stale else "0")

    def complete(self, part: str) -> None:
        """Everything `part` needs, in place."""
        debian, go = needs(part)
        self.install_debian(*debian)
        for name, version in go.items():
            self.build_go(name, version)
        kinds = {kind for kind, _ in listing(part)}
        if "schemas" in kinds:
            self.fetch_schemas(part)
        if "jars" in kinds:
            self.fetch_jars()
        self.venv_stale(False)

    def setup(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SETUP), *args],
            env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )

    def log(self) -> list[str]:
        path = self.folder / "log"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    stand_ins = tmp_path / "stand-ins"
    stand_ins.mkdir()
    for name, body in STAND_INS.items():
        path = stand_ins / name
        path.write_text("#!/usr/bin/env bash\n" + body.lstrip("\n"))
        path.chmod(0o755)
    jdk = tmp_path / "jdk"
    (jdk / "bin").mkdir(parents=True)
    (jdk / "bin" / "java").write_text("#!/bin/sh\n")
    (jdk / "bin" / "java").chmod(0o755)
    (tmp_path / "installed").write_text("")
    (tmp_path / "venv-stale").write_text("0")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CQRS_", "MAKE", "MFLAGS", "GO"))
    }
    env.update(
        PATH=f"{stand_ins}{os.pathsep}{os.environ['PATH']}",
        FAKE=str(tmp_path),
        FAKE_UID="0",
        PYTHON=sys.executable,
        CQRS_TOOLS_DIR=str(tmp_path / "tools"),
        CQRS_TESTBED_CACHE=str(tmp_path / "jars" / "lib"),
        CQRS_TESTBED_JAVA_HOME=str(jdk),
    )
    return Machine(tmp_path, env)


@pytest.mark.parametrize("part", PARTS)
def test_with_everything_in_place_the_dry_run_names_nothing(machine: Machine, part: str) -> None:
    machine.complete(part)
    result = machine.setup("--for", part, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"setup: nothing to do: all set-up for `make {'test-unit' if part == 'unit' else part}` "
        "is in place"
    ]
    assert machine.log() == []


@pytest.mark.parametrize("part", PARTS)
def test_a_second_run_changes_nothing_and_says_so_in_one_line(machine: Machine, part: str) -> None:
    machine.complete(part)
    result = machine.setup("--for", part)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert re.fullmatch(
        r"setup: all set-up for `make [\w-]+` in place, nothing needed \(\d+\.\d\d s\)", line
    ), line
    assert machine.log() == [], "nothing is installed, built or fetched"
    assert result.stderr == ""


def test_the_dry_run_names_each_missing_thing_and_changes_nothing(machine: Machine) -> None:
    machine.install_debian("openjdk-17-jdk-headless", "maven", "prometheus")
    machine.build_go("helm", "v3.21.0")  # another version counts as missing
    machine.venv_stale(True)
    result = machine.setup("--for", "test", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "setup: would install Debian packages: wrk chromium (apt-get update first)",
        "setup: would set up the Python environment in .venv (make install)",
        *(
            f"setup: would build {name} {version} into {machine.tools}/bin"
            for name, version in needs("test")[1].items()
        ),
        "setup: would fetch the Kubernetes schemas (v1.25.0 v1.37.0) into "
        f"{machine.tools}/kubernetes-json-schema",
        f"setup: would fetch the Cassandra {jars.DEFAULT_VERSION} jars from Maven Central",
    ]
    assert machine.log() == []
    assert not (machine.tools / "bin" / "kubeconform").exists()


def test_apt_get_update_runs_once_and_only_when_a_package_is_missing(machine: Machine) -> None:
    machine.complete("test")
    (machine.folder / "installed").write_text("openjdk-17-jdk-headless\nmaven\nprometheus\n")
    result = machine.setup("--for", "test")
    assert result.returncode == 0, result.stderr
    assert machine.log() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 wrk chromium",
    ]
    assert result.stdout.splitlines()[0] == (
        "setup: installing Debian packages: wrk chromium (apt-get update first; a minute or two)"
    )
    again = machine.setup("--for", "test")
    assert "nothing needed" in again.stdout
    assert len(machine.log()) == 2, "the second run calls apt-get not at all"


def test_not_root_it_skips_the_packages_and_prints_the_one_command_to_run(
    machine: Machine,
) -> None:
    machine.complete("test")
    (machine.folder / "installed").write_text("openjdk-17-jdk-headless\nmaven\n")
    machine.env["FAKE_UID"] = "1000"
    result = machine.setup("--for", "test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "setup: skipping Debian packages prometheus wrk chromium: installing them needs root; run",
        "setup:   sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends "
        "prometheus wrk chromium'",
        AnyMatch(r"setup: set-up for `make test` incomplete after \d+\.\d\d s: missing "
                 r"prometheus wrk chromium \(see above\)"),
    ]
    assert machine.log() == []


def test_without_maven_or_the_jdk_the_jars_are_skipped_with_a_reason(machine: Machine) -> None:
    machine.complete("run")
    for path in Path(machine.env["CQRS_TESTBED_CACHE"]).iterdir():
        path.unlink()
    (Path(machine.env["CQRS_TESTBED_JAVA_HOME"]) / "bin" / "java").unlink()
    result = machine.setup("--for", "run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(
        "setup: skipping the Cassandra jars: fetching them needs mvn and a JDK 17 in "
    )
    assert "incomplete" in result.stdout.splitlines()[-1]


def test_a_missing_venv_is_built_through_make_install(machine: Machine) -> None:
    machine.complete("unit")
    machine.venv_stale(True)
    result = machine.setup("--for", "unit")
    assert result.returncode == 0, result.stderr
    assert machine.log() == [
        f"make --no-print-directory -s -C {ROOT} install PYTHON={sys.executable}"
    ]


def test_a_python_that_cannot_make_a_venv_gets_python3_venv(machine: Machine) -> None:
    machine.complete("unit")
    machine.venv_stale(True)
    no_ensurepip = machine.folder / "python-without-ensurepip"
    no_ensurepip.write_text("#!/bin/sh\nexit 1\n")
    no_ensurepip.chmod(0o755)
    machine.env["PYTHON"] = str(no_ensurepip)
    result = machine.setup("--for", "unit", "--dry-run")
    assert result.stdout.splitlines()[0] == (
        "setup: would install Debian packages: python3-venv (apt-get update first)"
    )


TOXIPROXY = re.escape("github.com/Shopify/toxiproxy/v2")


def test_go_tools_are_built_at_their_pinned_versions_and_named_for_their_tool(
    machine: Machine,
) -> None:
    machine.complete("run")
    for name in ("toxiproxy-server", "toxiproxy-cli"):
        (machine.tools / "bin" / name).unlink()
    result = machine.setup("--for", "run")
    assert result.returncode == 0, result.stderr
    assert [line for line in machine.log() if line.startswith("go install")] == [
        AnyMatch(rf"go install -trimpath -ldflags .* {TOXIPROXY}/cmd/server@v2\.5\.0"),
        AnyMatch(rf"go install -trimpath -ldflags .* {TOXIPROXY}/cmd/cli@v2\.5\.0"),
    ]
    assert sorted(p.name for p in (machine.tools / "bin").iterdir()) == [
        "toxiproxy-cli", "toxiproxy-server",
    ]
    lines = result.stdout.splitlines()
    assert "setup: building toxiproxy-server v2.5.0 (a minute or two the first time)" in lines
    assert lines[-1] == AnyMatch(
        r"setup: set-up for `make run` done in \d+\.\d\d s "
        r"\(toxiproxy-server \d+ s, toxiproxy-cli \d+ s\)"
    )


def test_a_failed_build_stops_the_set_up_and_leaves_nothing_half_built(machine: Machine) -> None:
    machine.complete("run")
    (machine.tools / "bin" / "toxiproxy-server").unlink()
    (machine.folder / "go-fails").touch()
    result = machine.setup("--for", "run")
    assert result.returncode != 0
    assert "go: build failed" in result.stderr
    assert sorted(p.name for p in machine.tools.iterdir()) == ["bin"], "no scratch folder left"
    assert not (machine.tools / "bin" / "toxiproxy-server").exists()
    assert machine.setup("--for", "run", "--dry-run").stdout.splitlines() == [
        f"setup: would build toxiproxy-server v2.5.0 into {machine.tools}/bin"
    ]


def test_an_unknown_part_is_a_usage_error(machine: Machine) -> None:
    result = machine.setup("--for", "everything")
    assert result.returncode == 2
    assert "usage:" in result.stderr


class AnyMatch(str):
    """Equal to any string the pattern matches in full (for lines with timings in them)."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(str(self), other) is not None
