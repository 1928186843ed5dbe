"""Fetch Apache Cassandra's server jars from Maven Central into a local cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from testbed.errors import TestbedError

DEFAULT_VERSION = "5.0.8"
# Maven 3.8 otherwise resolves maven-dependency-plugin 2.8, which fails on this POM.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MARKER = ".complete"
JAVA_HOME = Path("/usr/lib/jvm/java-17-openjdk-amd64")

POM_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cqrs-exporter</groupId>
  <artifactId>cassandra-testbed-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def cache_dir(version: str = DEFAULT_VERSION) -> Path:
    """Where the jars of `version` live: $CQRS_TESTBED_CACHE or ~/.cache/cqrs-exporter/..."""
    override = os.environ.get("CQRS_TESTBED_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "cqrs-exporter" / f"cassandra-{version}" / "lib"


def java_home() -> Path:
    """The JDK 17 the server runs on; Cassandra 5.0 fails on JDK 24+."""
    return Path(os.environ.get("CQRS_TESTBED_JAVA_HOME", str(JAVA_HOME)))


def is_cached(version: str = DEFAULT_VERSION) -> bool:
    """Whether the jars of `version` are in the cache, complete: nothing left to download."""
    return _is_complete(cache_dir(version), version)


def ensure_jars(version: str = DEFAULT_VERSION) -> Path:
    """Return a folder holding cassandra-all `version` and its runtime dependencies.

    Downloads through Maven on first use; later calls return the cached folder.
    """
    target = cache_dir(version)
    if _is_complete(target, version):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise TestbedError(
            "cannot fetch the Cassandra jars: `mvn` is not on PATH (install Maven 3.8+)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Download into a sibling folder and rename at the end, so a broken run never
    # leaves a folder that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        pom = staging / "pom.xml"
        pom.write_text(POM_TEMPLATE.format(version=version))
        jars = staging / "lib"
        env = dict(os.environ, JAVA_HOME=str(java_home()))
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={jars}",
            "-DincludeScope=runtime",
            "-Dstyle.color=never",
        ]
        try:
            proc = subprocess.run(
                cmd, cwd=staging, env=env, capture_output=True, text=True, timeout=1800
            )
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(
                f"mvn did not finish fetching cassandra-all {version} in {exc.timeout:.0f} s"
            ) from exc
        if proc.returncode != 0 or not any(jars.glob("cassandra-all-*.jar")):
            output = (proc.stdout + proc.stderr).strip().splitlines()
            tail = "\n".join(output[-30:])
            raise TestbedError(
                f"mvn failed to fetch org.apache.cassandra:cassandra-all:{version} "
                f"(exit {proc.returncode}):\n{tail}"
            )
        (jars / MARKER).write_text(_marker_text(version))
        _replace(target, jars, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _marker_text(version: str) -> str:
    return f"org.apache.cassandra:cassandra-all:{version}\n"


def _is_complete(folder: Path, version: str) -> bool:
    """Whether `folder` holds a finished download of `version` (not a partial one)."""
    try:
        return (folder / MARKER).read_text() == _marker_text(version) and (
            folder / f"cassandra-all-{version}.jar"
        ).is_file()
    except OSError:
        return False


def _replace(target: Path, fresh: Path, version: str) -> None:
    """Put the folder `fresh` at `target`, dropping an incomplete earlier download."""
    if target.exists():
        if _is_complete(target, version):
            return  # another process finished first
        strays = [p for p in target.iterdir() if p.suffix != ".jar" and p.name != MARKER]
        if strays:
            raise TestbedError(
                f"refusing to replace {target}: it holds files other than jars ({strays[0].name})"
            )
        shutil.rmtree(target)
    fresh.rename(target)
