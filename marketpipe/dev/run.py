"""`marketpipe dev`: the whole pipeline on one machine, visible.

Starts (or reuses) Kafka + the registry, registers the schemas, starts the venue simulators (or uses
real venue URLs from the environment), one producer process per venue and a faust processor worker,
then shows the live view until Ctrl-C (or --duration seconds after "pipeline up"). Independent parts
start at once (each venue in its own thread; see `main`). Everything it started is stopped on exit;
infrastructure it started itself is stopped too (the downloads stay cached, so the next run is fast).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.live import Live

from marketpipe.dev.plan import PLANS, processor_component
from marketpipe.dev.supervisor import ComponentFailed, Supervisor
from marketpipe.dev.view import PipelineWatcher, render
from marketpipe.infra import stack
from marketpipe.infra.ports import free_port
from marketpipe.topics_admin import ensure_topics
from schemas.registry import ContractRegistry

_PRINT_LOCK = threading.Lock()


def _progress(msg: str) -> None:
    """One timestamped line, whole (start-up threads print at once: no line is split by another)."""
    line = f"[{time.strftime('%H:%M:%S')}] {msg}\n"
    with _PRINT_LOCK:
        sys.stdout.write(line)
        sys.stdout.flush()


def _log_through(stream: TextIO) -> None:
    """Point the root logger's stream handlers at `stream` (rich.live swaps sys.stderr for a proxy that
    prints above the view; handlers made earlier still hold the real stderr)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setStream(stream)


async def _watch(watcher: PipelineWatcher, supervisor: Supervisor, args: argparse.Namespace, started: float) -> int:
    """Refreshes the view every second until --duration seconds have passed (counted from here: the
    pipeline is up) or Ctrl-C. On a terminal the view is redrawn in place by rich.live (cursor moves, no
    clear-screen: the start-up log stays above it, the scroll-back keeps one copy); elsewhere it prints a
    plain line every 5 s."""
    stop = asyncio.Event()
    follower = asyncio.create_task(watcher.follow_derived(stop))
    tty = sys.stdout.isatty() and not args.no_view
    deadline = None if args.duration is None else time.monotonic() + args.duration
    last_line = 0.0
    reported: set[str] = set()
    live: Live | None = None
    if tty:
        live = Live(render(watcher.state, started), console=Console(), auto_refresh=False, transient=False,
                    redirect_stdout=True, redirect_stderr=True, vertical_overflow="crop")
        live.start()
        _log_through(sys.stderr)  # log lines go above the view, through rich's stderr proxy
    try:
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            for failure in supervisor.failed():
                if not failure.name.startswith(("producer-", "simulator-")):
                    _progress(f"FAILED: {failure}")  # the processor (or infra): nothing works without it
                    return 1
                if failure.name not in reported:  # one venue down: shown in red, the others go on
                    reported.add(failure.name)
                    _progress(f"{failure.name} is DOWN: {str(failure).splitlines()[0]}")
                    watcher.state.errors.append(str(failure).splitlines()[0])
            await asyncio.to_thread(watcher.sample)
            if args.status_file:
                tmp = Path(args.status_file + ".tmp")
                tmp.write_text(json.dumps(watcher.state.as_json(), default=str))
                tmp.replace(args.status_file)
            if live is not None:
                live.update(render(watcher.state, started), refresh=True)
            elif time.monotonic() - last_line > 5:
                last_line = time.monotonic()
                tops = ", ".join(f"{k} {v['best_bid']}/{v['best_ask']}" for k, v in sorted(watcher.state.tops.items()))
                _progress(f"books: {tops or 'waiting'}; lag {watcher.state.lag}")
        return 0
    finally:
        if live is not None:
            live.stop()
            _log_through(sys.stderr)
        stop.set()
        await asyncio.gather(follower, return_exceptions=True)


def _start_venue(supervisor: Supervisor, venue: str, producers_may_start: Future[dict[str, str]]) -> list[dict[str, object]]:
    """One venue: its simulator(s) at once (they need no Kafka), its producer once `producers_may_start`
    gives the base environment (Kafka, topics, schemas there). Runs in its own thread, beside the others."""
    plan = PLANS[venue]
    components: list[dict[str, object]] = []
    sims = plan.simulators({})
    for comp in sims:
        _progress(f"starting {comp.name}...")
        supervisor.start(comp)
        components.append({"name": comp.name, "venue": venue, "pid": comp.pid, "port": comp.ready_port,
                           "truth_markets": plan.truth_markets or {}})
    base_env = producers_may_start.result()
    health = free_port()
    producer = plan.producer(base_env, health)
    _progress(f"starting {producer.name}...")
    supervisor.start(producer)
    components.append({"name": producer.name, "venue": venue, "pid": producer.pid, "port": health,
                       "metrics_url": f"http://127.0.0.1:{health}/metrics"})
    return components


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    unknown = [v for v in venues if v not in PLANS]
    if unknown:
        print(f"unknown venues {unknown}; known: {sorted(PLANS)}", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops everything even when SIGINT came in ignored (a shell starts background jobs that way)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    own_infra = False
    bootstrap = os.environ.get("MARKETPIPE_KAFKA_BOOTSTRAP")
    registry_url = os.environ.get("MARKETPIPE_REGISTRY_URL")
    run_dir = stack.state_dir() / "dev" / time.strftime("%Y%m%d-%H%M%S")
    supervisor = Supervisor(run_dir / "logs", _progress)
    rc = 1
    app_id = ""
    # Independent parts start at once: every venue's simulators right away (beside Kafka and the
    # registry), producers and the processor as soon as Kafka, the topics and the schemas are there
    # (producers after the processor when it reads from the latest offsets, see below).
    producers_may_start: Future[dict[str, str]] = Future()
    pool = ThreadPoolExecutor(max_workers=len(venues) + 1, thread_name_prefix="dev-start")
    venue_starts = {venue: pool.submit(_start_venue, supervisor, venue, producers_may_start) for venue in venues}
    try:
        if not (bootstrap and registry_url):
            before = stack.status()
            own_infra = not (before and before["kafka_alive"] and before["registry_alive"])
            state = stack.up(_progress)
            bootstrap, registry_url = state["bootstrap"], state["registry_url"]
        t0 = time.monotonic()
        ensure_topics(bootstrap)
        registry = ContractRegistry(registry_url)
        regs = registry.register_all()
        _progress(f"{len(regs)} schemas registered (FULL_TRANSITIVE) in {time.monotonic() - t0:.1f}s")
        base_env = {"MARKETPIPE_KAFKA_BOOTSTRAP": bootstrap, "MARKETPIPE_REGISTRY_URL": registry_url,
                    "MARKETPIPE_REGISTER_SCHEMAS": "false", "MARKETPIPE_CREATE_TOPICS": "false"}
        web_port = 6066 if _port_free(6066) else free_port()
        app_id = f"marketpipe-dev-{uuid.uuid4().hex[:6]}"
        proc = processor_component(base_env, web_port, app_id, run_dir / "processor-data",
                                   offset_reset="earliest" if own_infra else "latest")
        _progress("starting the processor worker (faust)...")
        processor_started = pool.submit(supervisor.start, proc)
        if not own_infra:
            # on a cluster that was already there the processor starts at the latest offsets: it must be
            # positioned before the producers publish their first book snapshots, or it never sees them
            processor_started.result()
        producers_may_start.set_result(base_env)
        components: list[dict[str, object]] = []
        metrics_urls: dict[str, str] = {}
        for venue, fut in venue_starts.items():
            for comp in fut.result():
                url = comp.pop("metrics_url", None)
                if url:
                    metrics_urls[venue] = str(url)
                components.append(comp)
        processor_started.result()
        components.insert(0, {"name": "processor", "pid": proc.pid, "port": web_port})
        query = f"http://127.0.0.1:{web_port}"
        urls = [f"{query}/books/<venue>/<market>?depth=10", f"{query}/books/<venue>/<market>/top",
                f"{query}/candles/<venue>/<market>/1m", f"{query}/accounts/<venue>/<account>/balances",
                f"{query}/metrics"]
        _progress(f"pipeline up in {time.monotonic() - started:.1f}s; query e.g. "
                  f"marketpipe query top drift:SOL-PERP --url {query}")
        _progress(f"web view: {query}/ui/ (add #token=<query token> when MARKETPIPE_PROCESSOR_QUERY_TOKEN is set)")
        if args.duration is not None:
            _progress(f"stopping by itself in {args.duration:g}s (--duration counts from pipeline up)")
        watcher = PipelineWatcher(bootstrap, registry, group_id=app_id, metrics_urls=metrics_urls, query_urls=urls)
        watcher.state.components = components
        try:
            rc = asyncio.run(_watch(watcher, supervisor, args, started))
        finally:
            del watcher  # release its Kafka admin client before the broker goes away (no librdkafka noise)
            gc.collect()
    except ComponentFailed as exc:
        _progress(f"FAILED: {exc}")
        rc = 1
    except (KeyboardInterrupt, asyncio.CancelledError):  # asyncio.run re-raises a twice-cancelled task as is
        _progress("stopping (Ctrl-C)...")
        rc = 0
    finally:
        if not producers_may_start.done():
            producers_may_start.set_exception(ComponentFailed("infrastructure", run_dir / "logs" / "infra.log", "did not come up"))
        supervisor.stop_all()  # also ends (and refuses) the start-ups still under way in the pool's threads
        pool.shutdown(wait=True, cancel_futures=True)
        if own_infra:
            stack.down(_progress)
        elif bootstrap and app_id:
            _delete_app_topics(bootstrap, app_id)
        _progress(f"stopped everything; logs in {run_dir / 'logs'}")
    return rc


def _delete_app_topics(bootstrap: str, app_id: str) -> None:
    """The dev worker's internal topics (changelogs, ticks) on a cluster we did not start: remove them."""
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{app_id}-")]
        for fut in admin.delete_topics(names, operation_timeout=20, request_timeout=25).values() if names else ():
            fut.result(timeout=30)
        _progress(f"deleted {len(names)} internal topics of {app_id}")
    except Exception as exc:  # cleanup is best effort; say so
        _progress(f"could not delete the internal topics of {app_id}: {exc}")


def _port_free(port: int) -> bool:
    from marketpipe.infra.ports import port_free

    return port_free(port)
