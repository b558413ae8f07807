"""FeedSettings: what every venue feed reads from the environment (prefix ``MARKETPIPE_``).

Venue modules subclass it and override defaults (``ws_url``, ``rest_url``...). ``markets`` accepts
a JSON list or comma-separated text (``MARKETPIPE_MARKETS=BTC-USD,ETH-USD``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from marketpipe.settings import EnvList, HttpUrl, Port, PublisherSettings, Seconds, WsUrl

EMPTY_MARKETS = "empty: the feed would run idle; name at least one market"


class FeedSettings(PublisherSettings):
    # a venue whose feed has nothing to do without markets sets this (see needs_markets)
    markets_required: ClassVar[bool] = False

    ws_url: WsUrl = ""
    rest_url: HttpUrl | None = None
    markets: EnvList = []
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_token: SecretStr | None = None  # a pre-issued token/JWT, where the venue uses one
    account_id: str | None = None  # profile / sub-account / address for private channels

    health_port: Port | None = None  # /health /ready /metrics; None -> metrics_port
    health_host: str = "0.0.0.0"

    reconnect_initial_delay: float = Field(0.5, gt=0)  # seconds
    reconnect_max_delay: float = Field(30.0, gt=0)
    reconnect_jitter: float = Field(0.5, ge=0, le=1)  # +-50 % of the delay
    reconnect_max_attempts: int | None = Field(None, gt=0)  # consecutive failures before giving up; None = never
    backoff_reset_after: float = Field(10.0, ge=0)  # a connection ready this long resets the backoff
    watchdog_seconds: Seconds = Field(30.0, gt=0)  # no message (data or heartbeat) for this long -> reconnect
    connect_timeout: float = Field(10.0, gt=0)
    subscribe_timeout: float = Field(10.0, gt=0)
    # venues with consecutive trade ids: at start-up each market's trades resume from its newest trade in
    # Kafka (read back from the tail of its partition, at most this many records, producers/core/resume.py),
    # so what happened while no producer ran is recovered or marked and repeats are not published twice; 0 = off
    trade_resume_scan_max: int = Field(100_000, ge=0)
    ws_ping_interval: float | None = Field(20.0, gt=0)  # WebSocket-level pings by the client; None = off
    ws_max_size: int = Field(16 * 1024 * 1024, gt=0)
    ws_max_queue: int = Field(256, gt=0)  # frames websockets buffers before it stops reading the socket
    book_buffer_max: int = Field(10_000, gt=0)  # deltas buffered per market while waiting for a snapshot

    def needs_markets(self) -> bool:
        """An empty market list leaves the feed idle: refused at start (overridden where it means "all")."""
        return self.markets_required

    @field_validator("markets")
    @classmethod
    def _markets_given(cls, v: list[str]) -> list[str]:
        if not v and cls.markets_required:
            raise ValueError(EMPTY_MARKETS)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FeedSettings:
        if self.reconnect_max_delay < self.reconnect_initial_delay:
            raise ValueError(f"reconnect_max_delay ({self.reconnect_max_delay}) must be >= "
                             f"reconnect_initial_delay ({self.reconnect_initial_delay})")
        if not self.markets and not self.markets_required and self.needs_markets():
            raise ValueError(f"MARKETPIPE_MARKETS=: {EMPTY_MARKETS}")
        return self

    def effective_health_port(self) -> int:
        return self.metrics_port if self.health_port is None else self.health_port
