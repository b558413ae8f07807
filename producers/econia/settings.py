"""EconiaSettings (env prefix MARKETPIPE_, like every service).

Auth: postgres-websockets wants an HS256 JWT in the URL path. Give either the DSS secret
(``MARKETPIPE_ECONIA_JWT_SECRET``: the feed mints a token per connection, with ``mode``, ``channels`` and
``exp``, and a fresh one after close 3001 "JWT expired") or a pre-issued token (``MARKETPIPE_API_TOKEN``:
once it expires the feed stops with a clear error). ``MARKETPIPE_MARKETS`` optionally limits the market
ids (``1,2``); empty = every market.
"""

from __future__ import annotations

from pydantic import SecretStr

from marketpipe.settings import EnvList
from producers.core.settings import FeedSettings

DEFAULT_CHANNELS = ["fill_event", "place_limit_order_event", "change_order_size_event", "cancel_order_event",
                    "market_registration_event"]


class EconiaSettings(FeedSettings):
    ws_url: str = "ws://127.0.0.1:3001"  # DSS postgres-websockets (compose maps 3001 -> 3000)
    rest_url: str | None = "http://127.0.0.1:3000"  # DSS PostgREST
    metrics_port: int = 9112
    econia_jwt_secret: SecretStr | None = None
    econia_channels: EnvList = DEFAULT_CHANNELS
    econia_token_ttl: float | None = 3600.0  # exp of minted tokens (s); None = no exp claim
    econia_backfill_page: int = 100  # rows per PostgREST request (DSS caps replies)
    econia_start_txn_version: int | None = None  # first start: backfill after this; None = start live
    econia_live_buffer_max: int = 100_000  # live events held while a backfill runs
    econia_dedup_window: int = 500_000  # (txn_version, event_idx) keys remembered
    econia_book: bool = True  # derive L2 books from the order events (needs the four order-event channels)
    # postgres-websockets sends only WebSocket pings (every 30 s) and quiet markets send nothing, so the
    # frame watchdog is off by default; the client's own WS pings detect a dead connection.
    watchdog_seconds: float = 86_400.0

    def market_ids(self) -> set[int]:
        return {int(m) for m in self.markets}

