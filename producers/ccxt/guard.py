"""Keep ccxt's socket reader alive when a venue message is malformed.

ccxt.pro parses each WebSocket message inside its client's receive loop (``exchange.handle_message``).
An exception escaping there (a price ``"abc"``, a missing field ccxt indexes blindly) is raised in an
asyncio callback: the receive loop stops, nothing rejects the pending ``watch_*`` futures, and the
channel goes silent forever. ``fence.install_message_guard`` wraps ``handle_message`` so that such a message
is counted, logged with an excerpt and skipped; the next message is handled normally. ccxt's own error
paths (``client.reject`` for nonce gaps, venue error replies) do not raise out of ``handle_message`` and
are unaffected. Installed before the first socket opens (ccxt binds the handler per connection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Malformed = Callable[[Any, BaseException], None]

