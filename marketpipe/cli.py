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
        state = stack.up(_progress)
        _progress(f"infra up in {time.monotonic() - t0:.1f}s")
        print(stack.env_exports(state))
    elif args.action == "down":
        stack.down(_progress)
    else:
        state = stack.status()
        if state is None:
            print("not running")
            return 1
        print(json.dumps(state, indent=2))
        return 0 if state["kafka_alive"] and state["registry_alive"] else 1
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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("MARKETPIPE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="marketpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("infra", help="local Kafka (KRaft) + Apicurio registry: up | down | status")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=cmd_infra)
    p = sub.add_parser("schemas", help="register | check | list the Avro contracts")
    p.add_argument("action", choices=["register", "check", "list"])
    p.add_argument("--url", help="registry URL (default: MARKETPIPE_REGISTRY_URL)")
    p.add_argument("--schema-dir", help="check this folder of .avsc files instead of schemas/avro")
    p.set_defaults(func=cmd_schemas)
    p = sub.add_parser("smoke", help="infra up, register schemas, publish one event per contract, read them back")
    p.set_defaults(func=cmd_smoke)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
