"""The `cqrs-exporter` command: serve, check-config, schema, grants, generate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from exporter import __version__
from exporter.config import Config, ConfigError, load_config, parse_listen, parse_shard

# As exporter.serving has them; imported lazily, so that `check-config` answers fast
# without loading the HTTP server and the driver.
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2


class _JsonFormatter(logging.Formatter):
    """One JSON object per record; an exception comes as `exc_type`, `exc_message` and
    `exc_info` (the formatted traceback), a stack as `stack_info`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            kind, value, _ = record.exc_info
            entry["exc_type"] = f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
            entry["exc_message"] = str(value)
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The driver logs every reconnection attempt at WARNING/ERROR; our probes say it better.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL if level != "DEBUG" else logging.INFO)
    # A run skipped or missed because the last is still going is counted by the runner
    # (cqrs_probe_skipped_runs_total): at a 100 ms cadence that is not worth a warning.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _report_config_error(error: ConfigError) -> int:
    print(f"{error.source}: invalid configuration", file=sys.stderr)
    for line in error.errors:
        print(line, file=sys.stderr)
    return EXIT_CONFIG


def _load(
    path: str, *, resolve_secrets: bool = True, read_tls_files: bool | None = None
) -> Config | int:
    try:
        return load_config(path, resolve_secrets=resolve_secrets, read_tls_files=read_tls_files)
    except ConfigError as error:
        return _report_config_error(error)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(
        args.config, resolve_secrets=args.resolve_secrets, read_tls_files=args.tls_files
    )
    if isinstance(config, int):
        return config
    secrets = "secrets read" if args.resolve_secrets else "secrets not read (--resolve-secrets)"
    print(
        f"{args.config}: OK (write datacenter {config.datacenters.write}; read datacenters "
        f"{', '.join(config.datacenters.read) or 'none'}; {len(config.read_models)} read "
        f"models; {secrets})"
    )
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from exporter.schema import schema_cql

    # The CQL needs no credentials: whoever creates the keyspace may not hold them.
    config = _load(args.config, resolve_secrets=False)
    if isinstance(config, int):
        return config
    for statement in schema_cql(config):
        print(f"{statement};")
    return EXIT_OK


def cmd_grants(args: argparse.Namespace) -> int:
    from exporter.grants import render

    # Like `schema`: whoever runs the grants holds other credentials, not the exporter's.
    config = _load(args.config, resolve_secrets=False)
    if isinstance(config, int):
        return config
    if config.cluster.auth is None:
        print(
            f"{args.config}: cluster.auth is not set: the grants are for the role it names",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    sys.stdout.write(render(config, args.config))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from exporter.serving import serve

    config = _load(args.config)  # secrets and TLS files read, each problem at its key
    if isinstance(config, int):
        return config
    if args.shard is not None:
        try:
            config = config.model_copy(update={"sharding": parse_shard(args.shard)})
        except ValueError as exc:
            print(f"--shard: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    listen = args.listen or config.server.listen
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        print(f"--listen: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.server.log_level, config.server.log_format.value)
    if config.cluster.auth is not None and not config.cluster.tls.enabled:
        logging.getLogger(__name__).warning(
            "cluster.auth is set but cluster.tls.enabled is false: the password crosses the "
            "network in clear text"
        )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(config, host, port, args.web_config_file))
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from exporter.generate import DEFAULT_RUNBOOK_URL, check, generate

    runbook_url = args.runbook_url or DEFAULT_RUNBOOK_URL
    config = None
    if args.config:
        loaded = _load(args.config, resolve_secrets=False)  # only thresholds are read
        if isinstance(loaded, int):
            return loaded
        config = loaded
    root = Path(args.output)
    if args.check:
        drifts = check(config, root, runbook_url=runbook_url)
        for drift in drifts:
            print(f"{drift.path}: {drift.problem}", file=sys.stderr)
        if drifts:
            print("generated files are out of date: run `cqrs-exporter generate`", file=sys.stderr)
            return EXIT_RUNTIME
        print("generated files are up to date")
        return EXIT_OK
    try:
        written = generate(config, root, runbook_url=runbook_url)
    except OSError as exc:
        print(f"{exc.filename or root}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_RUNTIME
    for path in written:
        print(path)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cqrs-exporter",
        description="Prometheus exporter and health endpoints for CQRS on multi-datacenter "
        "Cassandra.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("serve", help="run the exporter")
    run.add_argument("--config", required=True, metavar="PATH", help="YAML configuration file")
    run.add_argument("--listen", metavar="HOST:PORT", help="override server.listen")
    run.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="web config (TLS, basic auth, headers; exporter-toolkit format); overrides "
        "server.web_config_file",
    )
    run.add_argument(
        "--shard", metavar="INDEX/COUNT", help="override sharding: run shard INDEX of COUNT"
    )
    run.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config", metavar="PATH")
    check.add_argument(
        "--resolve-secrets",
        action="store_true",
        help="also read every secret (environment variable or file), as `serve` does",
    )
    check.add_argument(
        "--tls-files",
        action="store_true",
        help="also read and parse the cluster.tls files, as `serve` does",
    )
    check.set_defaults(func=cmd_check_config)

    schema = sub.add_parser("schema", help="print the CQL that creates the monitoring schema")
    schema.add_argument("--config", required=True, metavar="PATH")
    schema.set_defaults(func=cmd_schema)

    grants = sub.add_parser(
        "grants", help="print the CQL that creates the exporter's role, least privilege"
    )
    grants.add_argument("--config", required=True, metavar="PATH")
    grants.set_defaults(func=cmd_grants)

    gen = sub.add_parser("generate", help="write the Grafana dashboards and Prometheus rules")
    gen.add_argument("--config", metavar="PATH", help="take the thresholds from this file")
    gen.add_argument("--check", action="store_true", help="exit 1 if any file would change")
    gen.add_argument("--output", default=".", metavar="DIR", help="repository root (default .)")
    gen.add_argument(
        "--runbook-url",
        metavar="URL",
        help="base URL of the runbooks that alerts link to (default: this project's "
        "docs/runbooks.md)",
    )
    gen.set_defaults(func=cmd_generate)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
