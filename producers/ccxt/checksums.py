"""Book checksums ccxt does not verify, verified by us inside ccxt's own message handler.

ccxt 4.5.90 checks OKX's ``prevSeqId``/``seqId`` chain (``InvalidNonce``) but ignores the ``checksum``
OKX sends with every ``books`` message (its Kraken check is disabled by default and computed from
floats). A sequence chain cannot catch a message whose content is wrong, a checksum can. So for the
exchanges listed in :data:`VERIFIERS` the producer wraps ``handle_order_book_message``: after ccxt has
applied a message it computes the venue's checksum over the journaled book (``Decimal`` values built
from the wire text, so ``str()`` gives back the wire digits) and on a mismatch does exactly what ccxt
does for a nonce gap: forget the book, drop the subscription and reject the waiting future with
``ChecksumError`` (the next ``watch_order_book`` unsubscribes and subscribes again, i.e. a new snapshot).
Cost: the top 25 levels per message, independent of depth.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any

from ccxt.base.errors import ChecksumError

from producers.ccxt.fence import fail_book_subscription, is_subscribed, wrap_order_book_handler

log = logging.getLogger(__name__)


def okx_book_checksum(book: Any) -> int:
    """OKX v5: signed CRC32 of the first 25 levels per side, interleaved ``bid:ask`` as ``price:size``.

    Levels are ``Decimal`` built from the wire text; ``:f`` prints those digits back without exponent.
    """
    bids, asks = book["bids"], book["asks"]
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]:f}:{bids[i][1]:f}")
        if i < len(asks):
            parts.append(f"{asks[i][0]:f}:{asks[i][1]:f}")
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def install_okx_checksum(exchange: Any, on_mismatch: Callable[[str], None] | None = None) -> None:
    def verify(client: Any, message: dict, orderbook: Any, message_hash: str) -> None:
        expected = message.get("checksum") if isinstance(message, dict) else None
        if expected is None or not is_subscribed(client, message_hash):  # no checksum, or ccxt already failed it
            return
        actual = okx_book_checksum(orderbook)
        if actual != int(expected):
            symbol = orderbook.get("symbol")
            log.warning("%s %s: book checksum mismatch (venue %s, ours %s): resubscribing",
                        exchange.id, symbol, expected, actual)
            if on_mismatch is not None:
                on_mismatch(str(symbol))
            fail_book_subscription(exchange, client, message_hash, symbol,
                                   ChecksumError(f"{exchange.id} {exchange.orderbook_checksum_message(symbol)}"))

    wrap_order_book_handler(exchange, verify)


VERIFIERS: dict[str, Callable[..., None]] = {"okx": install_okx_checksum}


def book_checksum(exchange_id: str, book: Any) -> int | None:
    """The venue checksum of a book after an update, where we know how to compute it (for BookUpdate)."""
    if exchange_id == "okx":
        return okx_book_checksum(book)
    return None
