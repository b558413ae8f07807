"""`marketpipe` command line: one entry point, one subcommand per job.

Settings come from MARKETPIPE_* environment variables (`marketpipe produce <venue> --help` lists a venue's).
A service whose settings are invalid, or that cannot reach Kafka or the schema registry, says so in one line
per problem and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

from marketpipe.cli_help import Parser
from marketpipe.venues import VENUES, Venue, by_name, dev_names, simulator_names

PROG = "marketpipe"


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cmd_infra(args: argparse.Namespace) -> int:
    from marketpipe.infra import stack

    if args.action == "up":
        t0 = time.monotonic()
        state = stack.up(_progress, brokers=args.brokers)
        _progress(f"infra up in {time.monotonic() - t0:.1f}s")
        print(stack.env_exports(state))
    elif args.action == "down":
        stack.down(_progress)
    else:
        current = stack.status()
        if current is None:
            print("not running")
            return 1
        print(json.dumps(current, indent=2))
        return 0 if current["kafka_alive"] and current["registry_alive"] else 1
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas import compat, contracts

    if args.action == "check":
        from pathlib import Path

        schema_dir = Path(args.schema_dir) if args.schema_dir else contracts.SCHEMA_DIR
        problems = compat.check_all(schema_dir)
        for p in problems:
            print(f"INCOMPATIBLE: {p}")
        pending = compat.unreleased(schema_dir)
        names = list(contracts.load_dir(schema_dir))
        if problems:
            print(f"{len(problems)} compatibility problem(s); FULL_TRANSITIVE forbids them. "
                  "Add fields as [\"null\", T] with default null instead.")
            return 1
        print(f"{len(names)} schemas compatible with all released versions"
              + (f"; changed since the last release: {', '.join(pending)}" if pending else ""))
        return 0
    if args.action == "asyncapi":
        from pathlib import Path

        from marketpipe import catalog

        out_dir = Path(args.out) if args.out else catalog.DOCS_DIR
        if args.check:
            stale = catalog.stale(out_dir)
            for name in stale:
                print(f"STALE: {name} differs from `marketpipe schemas asyncapi` output; regenerate and commit it")
            return 1 if stale else 0
        for written in catalog.write(out_dir):
            print(f"wrote {written}")
        return 0
    if args.action == "list":
        from schemas.topics import ALL_TOPICS

        for t in ALL_TOPICS:
            print(f"{t.name:36} partitions={t.partitions} key={t.key.value:8} subject={t.subject} schema={t.schema}.avsc")
        return 0
    from marketpipe import preflight
    from marketpipe.settings import KafkaClientSettings
    from marketpipe.settings_check import load
    from schemas.registry import ContractRegistry, IncompatibleSchema

    settings = _settings(KafkaClientSettings)
    if args.url:
        settings = load(KafkaClientSettings, registry_url=args.url)
    if not preflight.wait_for_outputs(settings, _say(f"{PROG} schemas register"), kafka=False,
                                      registry_source="--url" if args.url else "MARKETPIPE_REGISTRY_URL"):
        return 2
    registry = ContractRegistry(settings.registry_url, basic_auth=settings.registry_auth())
    try:
        for reg in registry.register_all():
            print(f"{reg.subject}: id {reg.schema_id} ({reg.compatibility})")
    except IncompatibleSchema as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


def _settings(cls):  # type: ignore[no-untyped-def]
    """Settings from the environment; when nothing names a cluster, use `infra up`'s one if running."""
    from marketpipe.infra import stack
    from marketpipe.settings_check import load

    if "MARKETPIPE_KAFKA_BOOTSTRAP" not in os.environ:
        state = stack.status()
        if state and state["kafka_alive"] and state["registry_alive"]:
            return load(cls, kafka_bootstrap=state["bootstrap"], registry_url=state["registry_url"])
    return load(cls)


def _say(prog: str):  # type: ignore[no-untyped-def]
    def say(line: str) -> None:
        print(f"{prog}: {line}", file=sys.stderr, flush=True)
    return say


def cmd_smoke(args: argparse.Namespace) -> int:
    from marketpipe import smoke
    from marketpipe.infra import stack
    from marketpipe.settings import PublisherSettings

    if "MARKETPIPE_KAFKA_BOOTSTRAP" not in os.environ:
        stack.up(_progress)
    smoke.main(_settings(PublisherSettings))
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    """Run one venue producer with settings from the environment (what the Helm chart runs)."""
    from marketpipe.service_start import run_producer

    return run_producer(args.venue_entry, f"{PROG} produce {args.venue}")


def cmd_process(args: argparse.Namespace) -> int:
    """Run a faust worker of the processors with settings from the environment."""
    from marketpipe.service_start import run_processor

    return run_processor(f"{PROG} process", args.web_port, args.app_id)


def cmd_simulate(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args.simulator_module).serve(args) or 0)


def cmd_record(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from marketpipe.recording import run_recorder

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(run_recorder(args.upstream, out, args.port, args.duration))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from simulators import replay

    replay.main([args.recording, "--speed", str(args.speed), "--port", str(args.port),
                 "--duration", str(args.duration)])
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from marketpipe.query import main as query_main

    return query_main(args)


def cmd_tail(args: argparse.Namespace) -> int:
    from marketpipe import tail
    from marketpipe.consumer import ConsumerSettings

    return tail.main(args, _settings(ConsumerSettings))


def cmd_dev(args: argparse.Namespace) -> int:
    from marketpipe.dev.run import main as dev_main

    return dev_main(args)


def _venue_list(known: Sequence[str]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> str:
        names = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in names if v not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown venues {unknown or [text]}; known: {', '.join(known)}")
        return ",".join(names)
    return parse


def _venue_epilog(venue: Venue):  # type: ignore[no-untyped-def]
    def epilog() -> str:
        from marketpipe.cli_help import settings_table
        from marketpipe.venues import load_settings_class

        fixed = ", ".join(f"{k}={v}" for k, v in venue.env.items())
        head = f"producer: producers/{venue.producer}" + (f" with {fixed}" if fixed else "")
        if venue.required_env:
            head += f"; required: {', '.join(venue.required_env)}"
        return head + "\n\n" + settings_table(load_settings_class(venue), fixed=venue.env)
    return epilog


def build_parser(registry: Sequence[Venue] = VENUES, *, simulator_options: bool = True) -> Parser:
    """The whole command tree. Venue lists come from ``registry`` (marketpipe/venues.py).
    ``simulator_options=False`` skips importing the simulators (only `simulate` needs their options)."""
    parser = Parser(prog=PROG, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = parser.add_command(sub, "infra", help="local Kafka (KRaft) + Apicurio registry for development")
    p.add_argument("action", choices=["up", "down", "status"],
                   help="up: start both (state in MARKETPIPE_STATE_DIR) and print export lines; down: stop them; "
                        "status: JSON, exit 0 when both answer")
    p.add_argument("--brokers", type=int, default=1, choices=[1, 3],
                   help="up: KRaft nodes (broker + controller each); 3: replication factor 3, min.insync.replicas 2")
    p.set_defaults(func=cmd_infra)

    p = parser.add_command(sub, "schemas", help="register | check | list the Avro contracts | asyncapi: write the "
                                                "topic catalog (docs/)")
    p.add_argument("action", choices=["register", "check", "list", "asyncapi"],
                   help="register: into the registry; check: FULL_TRANSITIVE against schemas/released; "
                        "list: topics and subjects; asyncapi: docs/asyncapi.json + docs/topics.md from the code")
    p.add_argument("--url", help="registry URL (unset: MARKETPIPE_REGISTRY_URL, or `infra up`'s registry)")
    p.add_argument("--schema-dir", help="check this folder of .avsc files (unset: schemas/avro)")
    p.add_argument("--out", help="asyncapi: folder for asyncapi.json + topics.md (unset: docs/)")
    p.add_argument("--check", action="store_true", help="asyncapi: fail if the files in --out are stale")
    p.set_defaults(func=cmd_schemas)

    p = parser.add_command(sub, "smoke", help="infra up, register schemas, publish one event per contract, "
                                              "read them back")
    p.set_defaults(func=cmd_smoke)

    dev = dev_names(registry)
    p = parser.add_command(sub, "dev", help="the whole pipeline locally: infra, simulators, producers, processors, "
                                            "live view")
    p.add_argument("--duration", type=float, default=None, help="stop by itself this many seconds after "
                                                                "'pipeline up' (start-up not counted; unset: "
                                                                "run until Ctrl-C)")
    p.add_argument("--status-file", help="write the live view's state as JSON to this file every refresh")
    p.add_argument("--venues", type=_venue_list(dev), default=",".join(dev),
                   help=f"comma-separated venues to run, of: {', '.join(dev)}")
    p.add_argument("--no-view", action="store_true", help="plain progress lines instead of the live view")
    p.set_defaults(func=cmd_dev)

    p = parser.add_command(sub, "produce", help="run one venue producer (settings from MARKETPIPE_* environment; "
                                                "`produce <venue> --help` lists them)")
    venues_sub = p.add_subparsers(dest="venue", required=True, metavar="VENUE",
                                  help=", ".join(v.name for v in registry))
    for venue in registry:
        vp = p.add_command(venues_sub, venue.name, help=venue.summary, epilog_factory=_venue_epilog(venue))
        vp.set_defaults(func=cmd_produce, venue_entry=venue)

    p = parser.add_command(sub, "process", help="run a faust processor worker (settings from "
                                                "MARKETPIPE_PROCESSOR_* environment)")
    p.add_argument("--web-port", type=int, help="query/metrics port (unset: MARKETPIPE_PROCESSOR_WEB_PORT)")
    p.add_argument("--app-id", help="faust app id = consumer group (unset: MARKETPIPE_PROCESSOR_APP_ID)")
    p.set_defaults(func=cmd_process)

    p = parser.add_command(sub, "simulate", help="run a venue simulator on 127.0.0.1 (`simulate <venue> --help`)")
    sims_sub = p.add_subparsers(dest="venue", required=True, metavar="VENUE",
                                help=", ".join(simulator_names(registry)))
    for venue in registry:
        if venue.simulator_module is None:
            continue
        module = importlib.import_module(venue.simulator_module) if simulator_options else None
        sp = p.add_command(sims_sub, venue.name, help=f"{venue.summary}: simulator",
                           description=module.__doc__ if module else None)
        if module is not None:
            module.add_arguments(sp)
        sp.set_defaults(func=cmd_simulate, simulator_module=venue.simulator_module)

    p = parser.add_command(sub, "record", help="record a venue session (raw frames + receive times) through a proxy")
    p.add_argument("upstream", help="venue base URL, e.g. wss://api.prod.rabbitx.io or http://127.0.0.1:PORT")
    p.add_argument("--out", required=True, help="JSON-lines file to append to (its folder is created)")
    p.add_argument("--port", type=int, default=0, help="local proxy port (0: any free port); point the producer's "
                                                      "URLs here")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (unset: until Ctrl-C)")
    p.set_defaults(func=cmd_record)

    p = parser.add_command(sub, "replay", help="serve a recorded session to a producer (original or accelerated "
                                               "speed)")
    p.add_argument("recording", help="a JSON-lines file written by `marketpipe record`")
    p.add_argument("--speed", type=float, default=1.0, help="time factor: 2 = twice as fast, 0 = as fast as possible")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port, printed)")
    p.add_argument("--duration", type=float, default=600, help="stop after this many seconds")
    p.set_defaults(func=cmd_replay)

    p = parser.add_command(sub, "query", help="read books, candles and account state from the running processors")
    p.add_argument("what", choices=["book", "top", "candles", "balances", "orders", "positions", "fills"],
                   help="book: bid/ask ladder; top: best bid/ask; candles: table and chart; "
                        "balances/orders/positions/fills: an account's")
    p.add_argument("key", help="venue:market (book, top, candles) or venue:account (the others)")
    p.add_argument("--url", default=os.environ.get("MARKETPIPE_QUERY_URL", "http://127.0.0.1:6066"),
                   help="any processor worker (it forwards to the key's owner); env MARKETPIPE_QUERY_URL")
    p.add_argument("--depth", type=int, default=None, help="book: levels per side (unset: all)")
    p.add_argument("--interval", default="1m", help="candles: one of the processors' candle intervals")
    p.add_argument("--limit", type=int, default=None, help="candles, fills: the newest N (unset: all kept)")
    p.add_argument("--status", choices=["open", "closed", "all"], default=None,
                   help="orders: which ones (unset: the processors' default, open)")
    p.add_argument("--json", action="store_true", help="print the endpoint's JSON body unchanged (for scripts)")
    p.set_defaults(func=cmd_query)

    p = parser.add_command(sub, "tail", help="print decoded events of a topic (console consumer): marketpipe tail trades")
    p.add_argument("topic", help="topic name, contract (trade, book, ohlcv, ...) or short name (trades, ...)")
    p.add_argument("--venue", action="append", help="only these venues (repeat or comma-separate; unset: all)")
    p.add_argument("--market", action="append", help="only these markets / accounts (repeat or comma-separate; "
                                                      "unset: all)")
    p.add_argument("--from", dest="from_time", help="start at this time (ISO 8601, e.g. 2026-12-06T10:00:00Z; "
                                                    "unset: the end)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a summary")
    p.add_argument("--max-events", type=int, default=None, help="stop after this many events (unset: no limit)")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds (unset: no limit)")
    p.set_defaults(func=cmd_tail)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=os.environ.get("MARKETPIPE_LOG_LEVEL", "INFO").upper()
                        if os.environ.get("MARKETPIPE_LOG_LEVEL", "INFO").upper() in logging.getLevelNamesMapping()
                        else "INFO",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        parser = build_parser(simulator_options=bool(argv) and argv[0] == "simulate")
    except ModuleNotFoundError as exc:  # the image ships no simulators (test doubles stay in the source tree)
        if not (exc.name or "").startswith("simulators"):
            raise
        print(f"{PROG} simulate: the simulators are not installed here ({exc.name}); run them from a source "
              "checkout (pip install -e .)", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    from marketpipe.settings_check import SettingsProblem

    try:
        return int(args.func(args) or 0)
    except SettingsProblem as exc:  # a command that reads settings outside service_start (schemas, smoke)
        for line in exc.lines:
            _say(f"{PROG} {args.command}")(line)
        return 2


__all__ = ["build_parser", "by_name", "main"]

if __name__ == "__main__":
    sys.exit(main())
