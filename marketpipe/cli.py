"""`marketpipe` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time


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
    if args.action == "list":
        from schemas.topics import ALL_TOPICS

        for t in ALL_TOPICS:
            print(f"{t.name:36} partitions={t.partitions} key={t.key.value:8} subject={t.subject} schema={t.schema}.avsc")
        return 0
    from marketpipe.settings import KafkaClientSettings
    from schemas.registry import ContractRegistry, IncompatibleSchema

    settings = _settings(KafkaClientSettings)
    registry = ContractRegistry(args.url or settings.registry_url, basic_auth=settings.registry_auth())
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

    if "MARKETPIPE_KAFKA_BOOTSTRAP" not in os.environ:
        state = stack.status()
        if state and state["kafka_alive"] and state["registry_alive"]:
            return cls(kafka_bootstrap=state["bootstrap"], registry_url=state["registry_url"])
    return cls()


def cmd_smoke(args: argparse.Namespace) -> int:
    from marketpipe import smoke
    from marketpipe.infra import stack
    from marketpipe.settings import PublisherSettings

    if "MARKETPIPE_KAFKA_BOOTSTRAP" not in os.environ:
        stack.up(_progress)
    smoke.main(_settings(PublisherSettings))
    return 0


VENUES = ("rabbitx", "drift", "econia", "ccxt")


def cmd_produce(args: argparse.Namespace) -> int:
    """Run one venue producer with settings from the environment (what the Helm chart runs)."""
    import importlib

    module = importlib.import_module(f"producers.{args.venue}")
    return int(module.main() or 0)


def cmd_process(args: argparse.Namespace) -> int:
    """Run a faust worker of the processors with settings from the environment."""
    import processors

    return int(processors.main(args.faust_args) or 0)


def cmd_simulate(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"simulators.{args.venue}.__main__")
    return int(module.main(args.sim_args) or 0)


def cmd_record(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from marketpipe.recording import run_recorder

    asyncio.run(run_recorder(args.upstream, Path(args.out), args.port, args.duration))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from simulators import replay

    replay.main([args.recording, "--speed", str(args.speed), "--port", str(args.port),
                 "--duration", str(args.duration)])
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from marketpipe.query import main as query_main

    return query_main(args)


def cmd_dev(args: argparse.Namespace) -> int:
    from marketpipe.dev.run import main as dev_main

    return dev_main(args)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("MARKETPIPE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="marketpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("infra", help="local Kafka (KRaft) + Apicurio registry: up | down | status")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--brokers", type=int, default=1, choices=[1, 3],
                   help="KRaft nodes (broker + controller each); 3: replication factor 3, min.insync.replicas 2")
    p.set_defaults(func=cmd_infra)
    p = sub.add_parser("schemas", help="register | check | list the Avro contracts")
    p.add_argument("action", choices=["register", "check", "list"])
    p.add_argument("--url", help="registry URL (default: MARKETPIPE_REGISTRY_URL)")
    p.add_argument("--schema-dir", help="check this folder of .avsc files instead of schemas/avro")
    p.set_defaults(func=cmd_schemas)
    p = sub.add_parser("smoke", help="infra up, register schemas, publish one event per contract, read them back")
    p.set_defaults(func=cmd_smoke)
    p = sub.add_parser("dev", help="the whole pipeline locally: infra, simulators, producers, processors, live view")
    p.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    p.add_argument("--status-file", help="write the live view's state as JSON to this file every refresh")
    p.add_argument("--venues", default="rabbitx,drift,econia,binance,okx,coinbase", help="comma-separated venues to run")
    p.add_argument("--no-view", action="store_true", help="plain progress lines instead of the live view")
    p.set_defaults(func=cmd_dev)
    p = sub.add_parser("produce", help="run one venue producer (settings from MARKETPIPE_* environment)")
    p.add_argument("venue", choices=VENUES)
    p.set_defaults(func=cmd_produce)
    p = sub.add_parser("process", help="run a faust processor worker (settings from MARKETPIPE_* environment)")
    p.add_argument("faust_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_process)
    p = sub.add_parser("simulate", help="run a venue simulator on 127.0.0.1 (see --help of each)")
    p.add_argument("venue", choices=["rabbitx", "drift", "econia", "binance", "okx", "coinbase"])
    p.add_argument("sim_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("record", help="record a venue session (raw frames + receive times) through a proxy")
    p.add_argument("upstream", help="venue base URL, e.g. wss://api.prod.rabbitx.io or http://127.0.0.1:PORT")
    p.add_argument("--out", required=True, help="JSON-lines file to append to")
    p.add_argument("--port", type=int, default=0, help="local proxy port (point the producer's URLs here)")
    p.add_argument("--duration", type=float, default=None)
    p.set_defaults(func=cmd_record)
    p = sub.add_parser("replay", help="serve a recorded session to a producer (original or accelerated speed)")
    p.add_argument("recording")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--duration", type=float, default=600)
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("query", help="read books, candles and account state from the running processors")
    p.add_argument("what", choices=["book", "top", "candles", "balances", "orders", "positions"])
    p.add_argument("key", help="venue:market (book/top/candles) or venue:account")
    p.add_argument("--url", default=os.environ.get("MARKETPIPE_QUERY_URL", "http://127.0.0.1:6066"))
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--interval", default="1m")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=cmd_query)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
