"""CcxtSettings: which exchange, markets, channels, credentials and URL overrides (env prefix MARKETPIPE_).

Examples (environment, as the Helm chart sets them)::

    MARKETPIPE_EXCHANGE=binance
    MARKETPIPE_MARKETS=BTC/USDT,ETH/USDT          # ccxt symbols, or normalized ids (BTC-USDT)
    MARKETPIPE_CHANNELS=book,trades,ticker,ohlcv
    MARKETPIPE_BOOK_DEPTH=1000
    MARKETPIPE_OHLCV_INTERVALS=1m,5m
    MARKETPIPE_API_KEY=... MARKETPIPE_API_SECRET=... MARKETPIPE_API_PASSWORD=...   # private channels
    MARKETPIPE_PRIVATE_CHANNELS=balance,orders,fills,positions
    MARKETPIPE_REST_BASE_OVERRIDE=http://127.0.0.1:18765        # every https REST URL -> this host, same path
    MARKETPIPE_URL_OVERRIDES='{"api.ws.spot": "ws://127.0.0.1:18765/ws"}'   # dotted path in exchange.urls
    MARKETPIPE_CCXT_OPTIONS='{"fetchMarkets": {"types": ["spot"]}}'        # deep-merged into exchange.options
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator

from marketpipe.settings import Count, EnvList, HttpUrl
from producers.core.settings import FeedSettings

PUBLIC_CHANNELS = ("book", "trades", "ticker", "ohlcv")
PRIVATE_CHANNELS = ("balance", "orders", "fills", "positions")


class CcxtSettings(FeedSettings):
    exchange: str = "binance"  # a ccxt.pro exchange id
    venue: str | None = None  # venue id in events and keys; default: the exchange id
    channels: EnvList = list(PUBLIC_CHANNELS)
    book_depth: int | None = Field(None, gt=0)  # limit passed to watch_order_book (None: the exchange default)
    ohlcv_intervals: EnvList = ["1m"]
    api_password: SecretStr | None = None  # passphrase (OKX, KuCoin...)
    private_channels: EnvList = []  # empty + credentials -> balance, orders, fills
    account_label: str = "default"  # account id in AccountEvents when account_id is not set
    rest_base_override: HttpUrl | None = None
    url_overrides: dict[str, str] = {}
    ccxt_options: dict[str, Any] = {}
    ccxt_config: dict[str, Any] = {}  # extra constructor config (timeout, enableRateLimit...)
    verify_checksums: bool = True  # venue checksums ccxt skips (OKX), see producers/ccxt/checksums.py
    check_sequence: bool = True  # per-connection message sequences ccxt skips (Coinbase), see producers/ccxt/coinbase.py
    heartbeats: bool = True  # keep-alive channels ccxt never subscribes to (Coinbase heartbeats)
    trade_dedup_window: Count = 10_000  # recent trade ids remembered per market (venues without consecutive ids)
    # items a ccxt tap may hold per queue (trades per market, orders, fills) while publishing blocks (Kafka
    # away): beyond it, items are refused and recovered over REST (consecutive trade ids) or gap-marked
    tap_queue_max: int = Field(200_000, gt=0)
    trade_recovery: bool = True  # fill holes in consecutive trade ids over REST (binance aggTrades, okx)
    trade_recovery_attempts: Count = 3  # REST attempts per hole before it is marked with a gap marker
    trade_recovery_retry_delay: float = 0.5  # seconds, doubled per attempt
    trade_recovery_max_pages: Count = 100  # REST pages per hole (binance 1000 trades each, okx 100)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, v: list[str]) -> list[str]:
        unknown = set(v) - set(PUBLIC_CHANNELS)
        if unknown:
            raise ValueError(f"unknown channels {sorted(unknown)}; known: {', '.join(PUBLIC_CHANNELS)}")
        return v

    @field_validator("private_channels")
    @classmethod
    def _known_private(cls, v: list[str]) -> list[str]:
        unknown = set(v) - set(PRIVATE_CHANNELS)
        if unknown:
            raise ValueError(f"unknown private channels {sorted(unknown)}; known: {', '.join(PRIVATE_CHANNELS)}")
        return v

    def venue_id(self) -> str:
        return (self.venue or self.exchange).lower()

    def needs_markets(self) -> bool:
        """Without markets only the private (account) channels run, and those need credentials."""
        return not self.has_credentials()

    def has_credentials(self) -> bool:
        return self.api_key is not None and self.api_secret is not None

    def effective_private_channels(self) -> list[str]:
        if not self.has_credentials():
            return []
        return self.private_channels or ["balance", "orders", "fills"]

    def account(self) -> str:
        return self.account_id or self.account_label
