"""Command line: parses arguments and calls into the package; no logic of its own."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from uptime_probe import __version__, runtime
from uptime_probe.config import ConfigError, load_config
from uptime_probe.config.model import DEFAULT_DATA_DIR, LOCATION_PATTERN, Config
from uptime_probe.config.units import parse_duration
from uptime_probe.sharding import parse_shard
from uptime_probe.starter import SIMULATOR_URL, base_url

EXIT_OK, EXIT_DOWN, EXIT_CONFIG = 0, 1, 2
T = TypeVar("T")
DEFAULT_CONFIG = os.environ.get("UPTIME_PROBE_CONFIG", "probes.yaml")


def _config_argument(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    if optional:
        # Read only for where things are: a missing default file is no error.
        parser.add_argument(
            "-c",
            "--config",
            help=f"path to probes.yaml, whose store.data_dir says where the history is "
            f"(default: {DEFAULT_CONFIG} if it exists, or $UPTIME_PROBE_CONFIG)",
        )
        return
    parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        help="path to probes.yaml (default: %(default)s, or $UPTIME_PROBE_CONFIG)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uptime-probe",
        description="Synthetic monitoring of scripted user journeys, exported to Prometheus.",
    )
    parser.add_argument("--version", action="version", version=f"uptime-probe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="run checks once and report (for CI and cron)")
    _config_argument(check)
    check.add_argument(
        "--check", action="append", default=[], metavar="NAME", help="only this check (repeatable)"
    )
    check.add_argument("--json", action="store_true", help="one JSON object per line")
    check.add_argument(
        "--artifacts",
        default=None,
        metavar="DIR",
        help="where failed browser steps' screenshots go (default: artifacts/ under "
        "$UPTIME_PROBE_DATA_DIR, else under the config's store.data_dir)",
    )
    check.add_argument(
        "--junit",
        metavar="FILE",
        help="also write the results to FILE as JUnit XML, the test report CI systems show",
    )

    validate = commands.add_parser("validate", help="validate probes.yaml and exit (2 on error)")
    _config_argument(validate)

    commands.add_parser("schema", help="print the JSON Schema of probes.yaml, for editors")

    init = commands.add_parser(
        "init", help="write a commented starter probes.yaml for a service (never overwrites)"
    )
    init.add_argument(
        "url",
        nargs="?",
        type=_typed(base_url),
        default=SIMULATOR_URL,
        metavar="URL",
        help="the service's base URL, e.g. https://chat.example.com (default: the simulator, "
        "%(default)s)",
    )
    init.add_argument(
        "-c", "--config", default="probes.yaml", help="the file to write (%(default)s)"
    )

    run = commands.add_parser("run", help="run the daemon: schedule checks, serve /metrics")
    _config_argument(run)
    _daemon_arguments(run)

    demo = commands.add_parser(
        "demo", help="replay the 3 Dec 2025 incident on the simulator and probe it, live"
    )
    demo.add_argument(
        "-c",
        "--config",
        help="path to probes.yaml (default: the example journeys the package carries)",
    )
    demo.add_argument(
        "--listen", default="127.0.0.1:9713", help="HOST:PORT for metrics (%(default)s)"
    )
    _data_dir_argument(demo)

    incidents = commands.add_parser(
        "incidents", help="print the incident timeline (a first draft of a postmortem)"
    )
    _config_argument(incidents, optional=True)
    _data_dir_argument(incidents)
    incidents.add_argument(
        "--since",
        type=_typed(parse_duration),
        default="24h",
        help="how far back, e.g. 24h, 7d (%(default)s)",
    )
    incidents.add_argument("--format", choices=["markdown", "json"], default="markdown")
    incidents.add_argument("--check", help="only this check")

    simulator = commands.add_parser("simulator", help="run the simulated chat service alone")
    simulator.add_argument("--listen", default="127.0.0.1:8765", help="HOST:PORT (%(default)s)")
    simulator.add_argument(
        "--scenario", default="healthy", help="bundled name or YAML file (%(default)s)"
    )
    simulator.add_argument("--speed", type=float, default=1.0, help="time factor (%(default)s)")
    simulator.add_argument("--loop", action="store_true", help="replay the scenario forever")
    simulator.add_argument("--token", default="demo-token", help="accepted bearer token")
    return parser


def _typed(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser raising ValueError: its message reaches the user."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _location(text: str) -> str:
    if not re.fullmatch(LOCATION_PATTERN, text):
        raise ValueError(f"{text!r} must match {LOCATION_PATTERN}")
    return text


def _grace_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a finite number of seconds >= 0")
    return value


def _log_queue_lines(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{text!r} is not a number of lines >= 1")
    return value


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("UPTIME_PROBE_DATA_DIR") or None,
        help="where the SQLite history lives (default: $UPTIME_PROBE_DATA_DIR, else the "
        f"config's store.data_dir, else {DEFAULT_DATA_DIR}/ in the working folder)",
    )


def _data_dir_flag(args: argparse.Namespace) -> Path | None:
    return Path(args.data_dir) if args.data_dir else None


def _daemon_arguments(parser: argparse.ArgumentParser) -> None:
    _data_dir_argument(parser)
    parser.add_argument("--listen", help="HOST:PORT to serve on, overriding server.listen")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("UPTIME_PROBE_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument(
        "--log-queue",
        type=_typed(_log_queue_lines),
        default=os.environ.get("UPTIME_PROBE_LOG_QUEUE", "10000"),
        help="log lines waiting to be written before new ones are dropped and counted, "
        "when stderr is not read (default: %(default)s, or $UPTIME_PROBE_LOG_QUEUE)",
    )
    parser.add_argument(
        "--shard",
        type=_typed(parse_shard),
        default=os.environ.get("UPTIME_PROBE_SHARD", "0/1"),
        help="INDEX/COUNT, or auto/COUNT from a StatefulSet pod's ordinal "
        "(default: %(default)s, or $UPTIME_PROBE_SHARD)",
    )
    parser.add_argument(
        "--location",
        type=_typed(_location),
        default=os.environ.get("UPTIME_PROBE_LOCATION"),
        help="the location label for this deployment, overriding the config's "
        "(or $UPTIME_PROBE_LOCATION)",
    )
    parser.add_argument(
        "--grace",
        type=_typed(_grace_seconds),
        default=10.0,
        help="seconds in-flight runs may finish on SIGTERM (%(default)s)",
    )


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from uptime_probe.oneshot import (
        UnknownCheck,
        as_json_lines,
        as_table,
        exit_code,
        run_checks_once,
    )

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    _say_skipped(config)
    if args.artifacts is not None:
        artifacts = Path(args.artifacts).absolute()
    else:  # where the daemon keeps them (`run --data-dir`'s default)
        data_dir = os.environ.get("UPTIME_PROBE_DATA_DIR")
        artifacts = (Path(data_dir) if data_dir else config.store.data_dir_path).absolute()
        artifacts /= "artifacts"
    try:
        results = runtime.run(run_checks_once(config, args.check, artifacts))
    except UnknownCheck as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    sys.stdout.write(as_json_lines(results, artifacts) if args.json else as_table(results))
    if args.junit:
        from uptime_probe.junit import as_junit

        try:
            Path(args.junit).write_bytes(as_junit(results, location=config.location))
        except OSError as exc:
            print(f"error: cannot write {args.junit}: {exc.strerror}", file=sys.stderr)
            return EXIT_CONFIG
    return exit_code(results)


def _say_skipped(config: Config) -> None:
    """On stderr, so `check --json` stays JSON: the checks `browser.when_missing: skip`
    dropped."""
    if config.skipped_checks:
        print(
            f"skipped {', '.join(config.skipped_checks)}: {config.skipped_because}",
            file=sys.stderr,
        )


def _validate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    import dataclasses
    import time

    from uptime_probe.config.validate import maintenance_warnings

    _say_skipped(config)

    for warning in maintenance_warnings(config, time.time()):
        located = dataclasses.replace(warning, source=Path(args.config).name)
        print(f"warning: {located}", file=sys.stderr)
    print(f"{args.config}: ok, {len(config.checks)} checks")
    return EXIT_OK


def _schema(_args: argparse.Namespace) -> int:
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "uptime-probe probes.yaml"
    print(json.dumps(schema, indent=2))
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from uptime_probe.starter import write_starter

    path = Path(args.config)
    try:
        write_starter(path, args.url)
    except FileExistsError:
        print(
            f"error: {path} exists; init never overwrites a file (move it, or name another "
            "with -c)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        f"wrote {path}: 4 example journeys against {args.url}.\n"
        f"Adapt them to your service, then: uptime-probe validate -c {path}"
    )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from uptime_probe.app import DaemonOptions, serve
    from uptime_probe.logs import configure_logging

    logs = configure_logging(args.log_level, max_queued_lines=args.log_queue)
    options = DaemonOptions(
        config_path=Path(args.config),
        listen=args.listen,
        grace_seconds=args.grace,
        data_dir=_data_dir_flag(args),
        shard=args.shard,
        location=args.location,
    )
    try:
        return runtime.run(serve(options, logs))
    finally:
        logs.writer.close()  # what is queued, within a bound: a stalled reader waits for no one


def _demo(args: argparse.Namespace) -> int:
    from uptime_probe.demo import run_demo

    config = Path(args.config) if args.config else None
    return runtime.run(run_demo(config, args.listen, _data_dir_flag(args)))


def _state_dir(args: argparse.Namespace) -> Path | None:
    """Where a command that reads the history finds it: `--data-dir` (or its variable),
    else the config's `store.data_dir`; None after a config error (already printed)."""
    flag = _data_dir_flag(args)
    if flag is not None:
        return flag
    path = args.config or os.environ.get("UPTIME_PROBE_CONFIG")
    if path is None:
        if not Path(DEFAULT_CONFIG).is_file():
            return Path(DEFAULT_DATA_DIR)
        path = DEFAULT_CONFIG
    config = _load(path)
    return config.store.data_dir_path if config is not None else None


def _incidents(args: argparse.Namespace) -> int:
    from uptime_probe.report import print_incidents

    data_dir = _state_dir(args)
    if data_dir is None:
        return EXIT_CONFIG
    return runtime.run(print_incidents(data_dir, args.since, args.format, args.check, sys.stdout))


def _simulator(args: argparse.Namespace) -> int:
    from uptime_probe.simulator import run_simulator

    return run_simulator(
        listen=args.listen,
        scenario=args.scenario,
        speed=args.speed,
        loop=args.loop,
        token=args.token,
    )


_COMMANDS = {
    "check": _check,
    "validate": _validate,
    "schema": _schema,
    "init": _init,
    "run": _run,
    "demo": _demo,
    "incidents": _incidents,
    "simulator": _simulator,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
