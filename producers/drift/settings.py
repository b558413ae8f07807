"""DriftSettings (env prefix MARKETPIPE_, like every service) and the market list format.

``MARKETPIPE_MARKETS`` lists ``<type>:<index>:<name>[:<base decimals>]``, e.g.
``perp:0:SOL-PERP,perp:1:BTC-PERP,spot:1:SOL:9``. Perp base precision is 1e9; a spot market's size
precision is its mint's decimals (required for spot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from marketpipe.settings import Count, EnvList, HttpUrl, Port, Seconds, WsUrl
from producers.core.settings import FeedSettings

PERP_BASE_EXP = 9


@dataclass(frozen=True)
class DriftMarketSpec:
    market_type: str  # perp | spot
    index: int
    name: str  # what the DLOB server subscribes with: SOL-PERP, SOL
    base_exp: int

    @property
    def market(self) -> str:
        """Normalized id: perps keep BASE-PERP, spot markets are quoted in USDC."""
        return self.name if self.market_type == "perp" else f"{self.name}-USDC"

    @property
    def book_channel(self) -> str:
        return f"orderbook_{self.market_type}_{self.index}_grouped_1"

    @property
    def trades_channel(self) -> str:
        return f"trades_{self.market_type}_{self.index}"

    @classmethod
    def parse(cls, text: str) -> DriftMarketSpec:
        parts = text.strip().split(":")
        if len(parts) not in (3, 4) or parts[0].lower() not in ("perp", "spot"):
            raise ValueError(f"drift market {text!r}: expected <perp|spot>:<index>:<name>[:<base decimals>]")
        market_type, index, name = parts[0].lower(), int(parts[1]), parts[2].upper()
        if market_type == "spot" and len(parts) != 4:
            raise ValueError(f"drift spot market {text!r} needs its base decimals: spot:<index>:<name>:<decimals>")
        base_exp = int(parts[3]) if len(parts) == 4 else PERP_BASE_EXP
        return cls(market_type, index, name, base_exp)


class DriftSettings(FeedSettings):
    markets_required: ClassVar[bool] = True
    ws_url: WsUrl = "wss://dlob.drift.trade/ws"
    rest_url: HttpUrl | None = "https://dlob.drift.trade"
    markets: EnvList = ["perp:0:SOL-PERP", "perp:1:BTC-PERP", "perp:2:ETH-PERP", "spot:1:SOL:9"]
    metrics_port: Port = 9111
    drift_trades: bool = True  # subscribe to trades_* as well as the grouped order books
    drift_heartbeat_timeout: Seconds = 12.0  # no {"channel":"heartbeat"} for this long -> reconnect (server: 5 s)
    watchdog_seconds: Seconds = 15.0  # no frame at all for this long -> reconnect
    drift_ws_deflate: bool = False  # permessage-deflate (server supports it): less bandwidth, more CPU
    drift_rest_snapshot_on_connect: bool = False  # GET /l2 after subscribing (the grouped channel sends none)
    drift_trade_dedup_window: Count = 200_000  # (txSig, fillRecordId) pairs remembered
    drift_fast_book_encoder: bool = True  # specialised Avro writer for SNAPSHOTs, checked against fastavro

    def market_specs(self) -> list[DriftMarketSpec]:
        return [DriftMarketSpec.parse(m) for m in self.markets]
