"""RabbitXSettings: the RabbitX feed's knobs (env prefix ``MARKETPIPE_``, like every service)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from marketpipe.settings import EnvList
from producers.core.settings import FeedSettings


class RabbitXSettings(FeedSettings):
    ws_url: str = "wss://api.prod.rabbitx.io/ws"
    rest_url: str | None = "https://api.prod.rabbitx.io"
    markets: EnvList = ["BTC-USD", "ETH-USD"]  # RabbitX market ids (comma list in env)
    account_id: str | None = None  # profile id: subscribes account@<profile_id> when set
    api_token: SecretStr | None = None  # JWT from onboarding; fetched with refresh_token when absent/expired
    refresh_token: SecretStr | None = None  # POST /jwt renews the JWT with it
    token_refresh_fraction: float | None = 0.75  # refresh after this share of the ttl; None = never (3005 path)
    market_suffix: str = "-PERP"  # RabbitX markets are perpetuals: BTC-USD -> BTC-USD-PERP
    settlement_asset: str = "USDT"  # asset of the account balance
    book_resync: Literal["resubscribe", "rest"] = "resubscribe"  # how a sequence gap is repaired
    rest_snapshot_depth: int = 1000
    trade_dedup_window: int = 50_000  # trade ids remembered per market (snapshots repeat recent trades)
    watchdog_seconds: float = 35.0  # server pings every 25 s
    publisher_linger_ms: int = 1  # the publisher batches while awaiting acks; a long linger only adds latency
