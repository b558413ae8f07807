"""The shared feed core: every venue producer plugs into it.

Modules (each one purpose):

- ``feed``: ``Feed`` base class: websockets client, newline-split frames, reconnect with capped
  exponential backoff + jitter, resubscribe after reconnect, watchdog, terminal errors, parse errors.
- ``book``: ``BookSynchronizer`` (snapshot + deltas, buffering, stale drop, gap -> RESET + resync,
  crossed-book detection) and ``OrderBook`` (Decimal keys in SortedDicts).
- ``emitter``: ``EventEmitter``: normalized records -> Avro via the registry -> ``KafkaPublisher``,
  keyed by ``market_key``/``account_key``, deterministic event ids.
- ``metrics``: ``FeedMetrics`` (Prometheus, labels venue/channel, plain mirror for tests).
- ``health``: ``HealthServer`` (aiohttp): ``/health``, ``/ready``, ``/metrics``.
- ``settings``: ``FeedSettings`` (subclass of ``PublisherSettings``, env prefix ``MARKETPIPE_``).
- ``numbers``: exact decimals (``decimal_text``, ``to_decimal``), ``to_micros``, ``now_micros``, ids.
- ``errors``: ``TerminalFeedError``, ``ReconnectRequested``, ``InexactNumber``.
- ``backoff``: ``Backoff``.
- ``runtime``: ``prepare_process()`` for a service's ``main()`` (freezes the start-up heap for short GC pauses).

How to add a venue
------------------
1. ``producers/<venue>/settings.py``: ``class XSettings(FeedSettings)`` with the venue's defaults
   (``ws_url``, ``rest_url``...) and extra knobs. Env prefix stays ``MARKETPIPE_``.
2. ``producers/<venue>/feed.py``: ``class XFeed(Feed)`` with ``venue = "x"`` and:
   - ``async on_open()``: send auth + subscriptions (``await self.send({...})``), await the venue's
     acknowledgements if it has them (the reader runs concurrently and resolves them), then
     ``self.mark_ready()``;
   - ``async on_message(msg, receive_ts)``: dispatch one parsed JSON message (pings included) to small
     handlers that carry the venue's sample payload in their docstring; publish with
     ``self.emitter.trade(...)`` / ``.ticker(...)`` / ``.account(...)`` / ``.candle(...)``; books go
     through one ``BookSynchronizer(venue, market, symbol, publish=self.emitter.book_sink(market),
     metrics=self.metrics, resync=...)`` per market (``snapshot()``/``delta()``);
   - ``channel_of(msg)`` for metric labels; ``on_disconnect(reason)``: ``await sync.reset("reconnect")``
     for every book; ``close_is_terminal(code, reason)`` / ``connect_error_is_terminal(exc)``.
   Convert numbers with ``decimal_text``/``to_decimal`` before touching state (a float raises
   ``InexactNumber`` and the core re-reads the message exactly); timestamps with ``to_micros``.
   Raise ``TerminalFeedError`` for refusals reconnecting cannot fix, ``ReconnectRequested`` to
   start over. Anything else a handler raises is counted as a parse error and skipped.
3. ``producers/<venue>/__init__.py``: ``main(settings=None)`` that calls ``prepare_process()`` and runs
   ``XFeed(settings).run()``.
4. Tests against the venue simulator through the wire; ``tests/feedcore/kafka_reader.py`` reads
   back what landed in Kafka and ``tests/feedcore/book_replay.py`` rebuilds books from BookUpdates.
5. One entry in ``marketpipe/venues.py`` (name, producer package, settings class, simulator, how
   ``marketpipe dev`` wires it): ``produce``, ``simulate``, ``dev --venues``, the dev plan and the Helm
   chart's allowed venues follow from it (``python -m marketpipe.venues --write`` rewrites the chart's enum
   and venue list and README's table; ``tests/helm/test_venue_registry.py`` fails until they match). A ccxt exchange needs only this step, its simulator and its tests.
   Give settings their ranges (``Port``, ``Seconds``, ``Count``, ``Field(gt=...)``, ``WsUrl``/``HttpUrl``)
   and set ``markets_required`` when an empty market list would leave the feed idle: ``marketpipe produce``
   reports every bad setting in one line before anything starts.
"""

from producers.core.backoff import Backoff
from producers.core.book import BookSynchronizer, OrderBook
from producers.core.emitter import EventEmitter
from producers.core.errors import InexactNumber, ReconnectRequested, TerminalFeedError
from producers.core.feed import Feed
from producers.core.health import HealthServer
from producers.core.metrics import FeedMetrics
from producers.core.numbers import decimal_text, now_micros, stable_id, to_decimal, to_micros
from producers.core.settings import FeedSettings

__all__ = [
    "Backoff", "BookSynchronizer", "EventEmitter", "Feed", "FeedMetrics", "FeedSettings", "HealthServer",
    "InexactNumber", "OrderBook", "ReconnectRequested", "TerminalFeedError", "decimal_text", "now_micros",
    "stable_id", "to_decimal", "to_micros",
]
