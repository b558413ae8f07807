"""Process set-up for a feed service's entry point.

``prepare_process()``: moves every object alive after start-up imports (modules, classes, schemas,
compiled code: ~75k objects) into the garbage collector's permanent generation (``gc.freeze()``), so
full collections scan only what the feed allocates later. Measured on the RabbitX benchmark: the
longest full collection dropped from ~60 ms to ~8 ms, which is what a p99 latency budget of 20 ms
needs. Call it once in ``main()``, before the event loop starts; not in tests.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from producers.core.errors import TerminalFeedError

if TYPE_CHECKING:
    from producers.core.feed import Feed


def prepare_process() -> None:
    gc.collect()
    gc.freeze()


def run_feed_service(make_feed: Callable[[], Feed], *, log_level: str, name: str,
                     config_errors: tuple[type[Exception], ...] = ()) -> int:
    """The blocking entry point every venue's ``main()`` uses: logging, ``prepare_process()``, then the feed
    until SIGTERM/SIGINT (which cancel it, so the publisher flushes before exit: a rollout loses
    nothing). Exit codes: 0 on a clean stop, 2 on a terminal venue error or a configuration error."""
    configure_logging(log_level)
    log = logging.getLogger(f"producers.{name}")
    prepare_process()

    async def serve() -> None:
        feed = make_feed()
        task = asyncio.create_task(feed.run(), name=f"{name}-feed")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("%s: stopped by signal (events flushed)", name)

    stops: tuple[type[Exception], ...] = (TerminalFeedError, *config_errors)
    try:
        asyncio.run(serve())
    except stops as exc:
        log.critical("%s stopped: %s", name, exc)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


class _RateLimitFilter(logging.Filter):
    """At most one record per (logger, message template) every `every` seconds; says how many it hid.
    aiokafka logs thousands of identical ERRORs per second while a broker is down."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        last, hidden = self._last.get(key, (0.0, 0))
        if now - last < self.every:
            self._last[key] = (last, hidden + 1)
            return False
        if hidden:
            record.msg = f"{record.msg} (and {hidden} similar messages in the last {self.every:.0f}s)"
        self._last[key] = (now, 0)
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).addFilter(_RateLimitFilter())
