"""Command lines for running Cassandra's server and tools on JDK 17."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from testbed.jars import java_home

# From Cassandra 5.0's conf/jvm17-server.options: without --add-opens java.base/java.io
# the server fails at start on FileDescriptor.fd, and JMX needs the java.rmi exports.
JDK17_MODULE_FLAGS: tuple[str, ...] = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
)

# The parts of conf/jvm-server.options and jvm17-server.options that matter for a
# small test node. Unlike production: no -XX:+AlwaysPreTouch (it would make the whole
# heap resident), and the client compiler with the serial collector, which start a
# node on about 40% less CPU time (and so much faster on a shared two-core machine).
SERVER_FLAGS: tuple[str, ...] = (
    "-ea",
    "-da:net.openhft...",
    "-Xss256k",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseThreadPriorities",
    "-XX:+PerfDisableSharedMem",
    "-XX:+UseTLAB",
    "-XX:+ResizeTLAB",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.net.preferIPv4Stack=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
)

# Short-lived tools start faster with the client compiler and a small serial heap.
TOOL_FLAGS: tuple[str, ...] = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.net.preferIPv4Stack=true",
)

SERVER_MAIN = "org.apache.cassandra.service.CassandraDaemon"
NODETOOL_MAIN = "org.apache.cassandra.tools.NodeTool"


def java_executable() -> Path:
    return java_home() / "bin" / "java"


def java_env() -> dict[str, str]:
    """The environment of a server or tool JVM: this one, with JAVA_HOME at the JDK used."""
    return dict(os.environ, JAVA_HOME=str(java_executable().parent.parent))


CAP_SETPCAP = 8
CAP_IPC_LOCK = 14


def _effective_capabilities() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def without_memory_lock() -> list[str]:
    """A command prefix that keeps the server from locking its whole heap into RAM.

    Cassandra calls mlockall() at start. Unprivileged, that fails harmlessly on
    RLIMIT_MEMLOCK; as root (CAP_IPC_LOCK) it succeeds and makes every page of the
    heap resident, doubling each node's memory. Dropping the capability from the
    bounding set before exec makes root behave like any other user here.
    """
    setpriv = shutil.which("setpriv")
    caps = _effective_capabilities()
    if setpriv is None or not caps & (1 << CAP_IPC_LOCK) or not caps & (1 << CAP_SETPCAP):
        return []
    return [setpriv, "--bounding-set", "-ipc_lock", "--"]


def _properties(system_properties: Mapping[str, str]) -> list[str]:
    return [f"-D{key}={value}" for key, value in system_properties.items()]


def server_command(lib: Path, heap: str, system_properties: Mapping[str, str]) -> list[str]:
    """The command line of one Cassandra server JVM."""
    agent = sorted(lib.glob("jamm-*.jar"))
    return [
        *without_memory_lock(),
        str(java_executable()),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        f"-XX:MaxDirectMemorySize={heap}",
        *SERVER_FLAGS,
        *JDK17_MODULE_FLAGS,
        *([f"-javaagent:{agent[-1]}"] if agent else []),
        *_properties(system_properties),
        "-cp",
        f"{lib}/*",
        SERVER_MAIN,
    ]


def tool_command(
    lib: Path, main_class: str, system_properties: Mapping[str, str], args: Sequence[str]
) -> list[str]:
    """The command line of a short-lived tool such as nodetool."""
    return [
        str(java_executable()),
        *TOOL_FLAGS,
        *JDK17_MODULE_FLAGS,
        *_properties(system_properties),
        "-cp",
        f"{lib}/*",
        main_class,
        *args,
    ]
