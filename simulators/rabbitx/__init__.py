"""RabbitX venue simulator: Centrifugo JSON protocol over a real WebSocket (``/ws``) + REST on 127.0.0.1.

Never imports producer code: producer and simulator meet only on the wire.
"""

from simulators.rabbitx.account import TrueAccount
from simulators.rabbitx.market import TrueMarket
from simulators.rabbitx.server import DEFAULT_MARKETS, RabbitXSimulator, SimConfig
from simulators.rabbitx.tokens import TokenAuthority

__all__ = ["DEFAULT_MARKETS", "RabbitXSimulator", "SimConfig", "TokenAuthority", "TrueAccount", "TrueMarket"]
