"""FeedSettings: what every venue feed reads from the environment (prefix ``MARKETPIPE_``).

Venue modules subclass it and override defaults (``ws_url``, ``rest_url``...). ``markets`` accepts
a JSON list or comma-separated text (``MARKETPIPE_MARKETS=BTC-USD,ETH-USD``).
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from marketpipe.settings import EnvList, PublisherSettings


class FeedSettings(PublisherSettings):
    ws_url: str = ""
    rest_url: str | None = None
    markets: EnvList = []
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_token: SecretStr | None = None  # a pre-issued token/JWT, where the venue uses one
    account_id: str | None = None  # profile / sub-account / address for private channels

    health_port: int | None = None  # /health /ready /metrics; None -> metrics_port
    health_host: str = "0.0.0.0"

    reconnect_initial_delay: float = 0.5  # seconds
    reconnect_max_delay: float = 30.0
    reconnect_jitter: float = 0.5  # +-50 % of the delay
    reconnect_max_attempts: int | None = None  # consecutive failures before giving up; None = never
    backoff_reset_after: float = 10.0  # a connection ready this long resets the backoff
    watchdog_seconds: float = 30.0  # no message (data or heartbeat) for this long -> reconnect
    connect_timeout: float = 10.0
    subscribe_timeout: float = 10.0
    # venues with consecutive trade ids: at start-up each market's trades resume from its newest trade in
    # Kafka (read back from the tail of its partition, at most this many records, producers/core/resume.py),
    # so what happened while no producer ran is recovered or marked and repeats are not published twice; 0 = off
    trade_resume_scan_max: int = Field(100_000, ge=0)
    ws_ping_interval: float | None = 20.0  # WebSocket-level pings by the client; None = off
    ws_max_size: int = 16 * 1024 * 1024
    ws_max_queue: int = 256  # frames websockets buffers before it stops reading the socket
    book_buffer_max: int = 10_000  # deltas buffered per market while waiting for a snapshot

    def effective_health_port(self) -> int:
        return self.metrics_port if self.health_port is None else self.health_port
