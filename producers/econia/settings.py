"""EconiaSettings (env prefix MARKETPIPE_, like every service).

Auth: postgres-websockets wants an HS256 JWT in the URL path. Give either the DSS secret
(``MARKETPIPE_ECONIA_JWT_SECRET``: the feed mints a token per connection, with ``mode``, ``channels`` and
``exp``, and a fresh one after close 3001 "JWT expired") or a pre-issued token (``MARKETPIPE_API_TOKEN``:
a close 3001 reconnects with it while its ``exp`` is ahead; once really past ``exp`` the feed stops with a
clear error). ``MARKETPIPE_MARKETS`` optionally limits the market
ids (``1,2``); empty = every market.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from marketpipe.settings import Count, EnvList, HttpUrl, Port, Seconds, WsUrl
from producers.core.settings import FeedSettings

# Every keyed event table of DSS (each has a (txn_version, event_idx) key and a PostgREST view, so it is
# reconciled). Not by default: ``updated_limit_order`` (keyless aggregator state, see feed.py) and the
# ``new_limit_order``/``new_market_order``/``new_swap_order`` channels (their triggers were dropped by the
# 2023-11-11 optimizations migration; accepted, counted and logged if a token lists them).
DEFAULT_CHANNELS = ["fill_event", "place_limit_order_event", "change_order_size_event", "cancel_order_event",
                    "market_registration_event", "place_market_order_event", "place_swap_order_event",
                    "recognized_market_event"]


class EconiaSettings(FeedSettings):
    ws_url: WsUrl = "ws://127.0.0.1:3001"  # DSS postgres-websockets (compose maps 3001 -> 3000)
    rest_url: HttpUrl | None = "http://127.0.0.1:3000"  # DSS PostgREST
    metrics_port: Port = 9112
    econia_jwt_secret: SecretStr | None = None
    econia_channels: EnvList = DEFAULT_CHANNELS
    econia_token_ttl: float | None = 3600.0  # exp of minted tokens (s); None = no exp claim
    econia_backfill_page: Count = 100  # rows per PostgREST request (DSS caps replies)
    econia_start_txn_version: int | None = None  # first start: backfill after this; None = start live
    # Venue order: events wait at most this long (s) / this many events to be put in (txn_version, event_idx)
    # order; a transaction delivered later than the window after a higher one is "late" (resync/restate).
    econia_reorder_seconds: float = Field(1.0, ge=0)
    econia_reorder_events: int = Field(10_000, gt=0)
    # Reconcile: every econia_reconcile_seconds (counted from the end of the previous one) the event tables
    # are read from PostgREST, from the key published econia_reconcile_lookback seconds before (or the last
    # reconciled head, if older). A notification lost on a healthy socket is applied by the first reconcile
    # that starts after its commit: within econia_reconcile_seconds + the duration of two reconciles
    # (+ econia_reorder_seconds when it is newer than what was published).
    econia_reconcile_seconds: float = Field(5.0, gt=0)
    econia_reconcile_lookback: float = Field(30.0, gt=0)
    econia_dedup_window: Count = 500_000  # (txn_version, event_idx) keys remembered
    econia_book: bool = True  # derive L2 books from the order events (needs the four order-event channels)
    # postgres-websockets sends only WebSocket pings (every 30 s) and quiet markets send nothing, so the
    # frame watchdog is off by default; the client's own WS pings detect a dead connection.
    watchdog_seconds: Seconds = 86_400.0

    @model_validator(mode="after")
    def _lookback_covers_interval(self) -> EconiaSettings:
        if self.econia_reconcile_lookback < self.econia_reconcile_seconds:
            raise ValueError("econia_reconcile_lookback must be >= econia_reconcile_seconds (else a lost "
                             "notification can fall between two reconciles)")
        return self

    def market_ids(self) -> set[int]:
        return {int(m) for m in self.markets}

