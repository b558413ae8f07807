"""RabbitXSettings: the RabbitX feed's knobs (env prefix ``MARKETPIPE_``, like every service)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, SecretStr

from marketpipe.settings import Count, EnvList, HttpUrl, Seconds, WsUrl
from producers.core.settings import FeedSettings


class RabbitXSettings(FeedSettings):
    markets_required: ClassVar[bool] = True
    ws_url: WsUrl = "wss://api.prod.rabbitx.io/ws"
    rest_url: HttpUrl | None = "https://api.prod.rabbitx.io"
    markets: EnvList = ["BTC-USD", "ETH-USD"]  # RabbitX market ids (comma list in env)
    account_id: str | None = None  # profile id: subscribes account@<profile_id> when set
    api_token: SecretStr | None = None  # JWT from onboarding; fetched with refresh_token when absent/expired
    refresh_token: SecretStr | None = None  # POST /jwt renews the JWT with it
    token_refresh_fraction: float | None = 0.75  # refresh after this share of the ttl; None = never (3005 path)
    market_suffix: str = "-PERP"  # RabbitX markets are perpetuals: BTC-USD -> BTC-USD-PERP
    settlement_asset: str = "USDT"  # asset of the account balance
    book_resync: Literal["resubscribe", "rest"] = "resubscribe"  # how a sequence gap is repaired
    rest_snapshot_depth: Count = 1000
    trade_dedup_window: Count = 50_000  # ids remembered per market for trade ids that are not <market>-<n>
    trade_history_path: str = "/markets/trades"  # REST trade history (the docs page also says /trades)
    trade_recovery_page_limit: int = Field(1000, gt=0, le=1000)  # p_limit per page (the venue's max: 1000)
    trade_held_max: int = Field(100_000, gt=0)  # trades held per market behind a hole before the reader waits
    trade_fill_stop_timeout: float = 10.0  # on shutdown, seconds a running hole fill may still take
    trade_recovery_max_pages: Count = Field(50, gt=0)  # pages walked back per hole (10 of 1200 REST tokens/min each)
    watchdog_seconds: Seconds = 35.0  # server pings every 25 s
    publisher_linger_ms: Annotated[int, Field(ge=0)] = 1  # the publisher batches while awaiting acks; a long linger only adds latency
