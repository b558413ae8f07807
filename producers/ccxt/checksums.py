"""Book integrity ccxt does not check (OKX and Kraken checksums, Bybit's ``u`` chain), checked by us
inside ccxt's own message handlers.

ccxt 4.5.90 checks OKX's ``prevSeqId``/``seqId`` chain (``InvalidNonce``) but ignores the ``checksum``
OKX sends with every ``books`` message (its Kraken check is disabled by default and computed from
floats). A sequence chain cannot catch a message whose content is wrong, a checksum can. So for the
exchanges listed in :data:`VERIFIERS` the producer wraps ``handle_order_book_message``: after ccxt has
applied a message it computes the venue's checksum over the journaled book (``Decimal`` values built
from the wire text, so ``str()`` gives back the wire digits) and on a mismatch does exactly what ccxt
does for a nonce gap: forget the book, drop the subscription and reject the waiting future with
``ChecksumError`` (the next ``watch_order_book`` unsubscribes and subscribes again, i.e. a new snapshot).
Cost: the top 25 levels per message, independent of depth.

**Kraken (WebSocket v2).** ccxt 4.5.90 speaks v2 (``wss://ws.kraken.com/v2``) and has its Kraken check
switched off ("not reliable"): it would hash floats, while Kraken hashes the wire text (``0.50000000`` ->
``50000000``). The producer decodes Kraken's JSON numbers as text (``fence.install_exact_json``, always on), and after
ccxt applied each ``book`` message (with the resolve held back, ``fence.wrap_book_handler``) computes the
CRC32 over the top 10 asks then bids. On a mismatch the waiting future gets ``ChecksumError`` instead of the
book, and the producer first *unsubscribes* that symbol (Kraken refuses a second subscribe with "Already
subscribed", which ccxt's own resync ignores) so the next subscribe brings a fresh snapshot for that market
only. Updates arriving for a failed book before its new snapshot are dropped.

**Bybit (v5).** ccxt 4.5.90 applies every ``orderbook.<depth>.<symbol>`` delta without looking at ``u``.
Bybit numbers the messages of a topic consecutively, and ``u`` = 1 on a snapshot means the service
restarted (ccxt resets the book in place on any snapshot: our SNAPSHOT). The producer checks, before ccxt
applies a delta, that ``u`` is the previous ``u`` + 1; otherwise the delta is not applied, the topic is
unsubscribed and the waiting future gets ``InvalidNonce`` (a RESET ``gap`` and a new snapshot). ``u`` is
also stamped as the book's ``nonce`` so BookUpdates carry ``sequence``/``prev_sequence``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any

from ccxt.base.errors import ChecksumError, InvalidNonce

from producers.ccxt.fence import (
    book_subscription,
    fail_book_subscription,
    is_subscribed,
    send_in_background,
    wrap_book_handler,
    wrap_order_book_handler,
)

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


def _kraken_token(value: Any) -> str:
    return f"{value:f}".replace(".", "").lstrip("0")


def kraken_book_checksum(book: Any) -> int:
    """Kraken v2: unsigned CRC32 of the top 10 asks (low to high) then the top 10 bids (high to low), each
    price then qty with the ``.`` removed and leading zeros stripped, from the wire digits."""
    parts = [_kraken_token(lv[0]) + _kraken_token(lv[1]) for lv in book["asks"][:10]]
    parts += [_kraken_token(lv[0]) + _kraken_token(lv[1]) for lv in book["bids"][:10]]
    return zlib.crc32("".join(parts).encode())


def install_kraken_checksum(exchange: Any, on_mismatch: Callable[[str], None] | None = None) -> None:
    awaiting_snapshot: set[str] = set()  # failed books: their updates are dropped until the new snapshot

    def first(message: Any) -> dict[str, Any]:
        data = message.get("data") if isinstance(message, dict) else None
        return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}

    def before(client: Any, message: Any) -> bool:
        symbol = str(first(message).get("symbol"))
        if message.get("type") == "snapshot":
            awaiting_snapshot.discard(symbol)
            return True
        return symbol not in awaiting_snapshot

    def after(client: Any, message: Any) -> bool:
        book = first(message)
        symbol, expected = book.get("symbol"), book.get("checksum")
        orderbook = exchange.orderbooks.get(symbol)
        if expected is None or orderbook is None:
            return True
        actual = kraken_book_checksum(orderbook)
        if actual == int(expected):
            return True
        message_hash = f"orderbook@{symbol}"  # ccxt kraken's get_message_hash('orderbook', None, symbol)
        log.warning("%s %s: book checksum mismatch (venue %s, ours %s): resubscribing", exchange.id, symbol,
                    expected, actual)
        if on_mismatch is not None:
            on_mismatch(str(symbol))
        depth = (book_subscription(client, message_hash) or {}).get("limit") or 10
        awaiting_snapshot.add(str(symbol))
        send_in_background(client, {"method": "unsubscribe", "params": {"channel": "book", "symbol": [symbol],
                                                                        "depth": depth},
                                    "req_id": exchange.request_id()})
        fail_book_subscription(exchange, client, message_hash, symbol,
                               ChecksumError(f"{exchange.id} {exchange.orderbook_checksum_message(symbol)}"))
        return False

    wrap_book_handler(exchange, "handle_order_book", before=before, after=after)


def install_bybit_sequence_check(exchange: Any, on_mismatch: Callable[[str], None] | None = None) -> None:
    last_u: dict[str, int] = {}  # topic -> u of the last message applied (absent: waiting for a snapshot)

    def parse(client: Any, message: Any) -> tuple[str, str, int] | None:
        topic = message.get("topic", "") if isinstance(message, dict) else ""
        data = message.get("data")
        if not topic.startswith("orderbook.") or not isinstance(data, dict) or data.get("u") is None:
            return None
        market_type = "spot" if "spot" in client.url else "contract"
        symbol = exchange.safe_market(topic.split(".")[-1], None, None, market_type)["symbol"]
        return topic, symbol, int(data["u"])

    def before(client: Any, message: Any) -> bool:
        parsed = parse(client, message)
        if parsed is None:
            return True
        topic, symbol, u = parsed
        if f"orderbook:{symbol}" not in client.subscriptions:
            return False  # a failed book's deltas still in flight
        if message.get("type") == "snapshot":
            last_u[topic] = u
            return True
        prev = last_u.get(topic)
        if prev is None:
            return False  # no snapshot yet for this subscription
        if u == prev + 1:
            last_u[topic] = u
            return True
        log.warning("%s %s: book update u=%s does not follow u=%s: resubscribing", exchange.id, symbol, u, prev)
        del last_u[topic]
        send_in_background(client, {"op": "unsubscribe", "req_id": str(exchange.request_id()), "args": [topic]})
        fail_book_subscription(exchange, client, f"orderbook:{symbol}", symbol,
                               InvalidNonce(f"{exchange.id} {symbol}: orderbook u={u} after u={prev}"))
        return False

    def stamp_nonce(client: Any, message: Any) -> None:
        parsed = parse(client, message)
        if parsed is not None and parsed[1] in exchange.orderbooks and last_u.get(parsed[0]) == parsed[2]:
            exchange.orderbooks[parsed[1]]["nonce"] = parsed[2]

    wrap_book_handler(exchange, "handle_order_book", before=before, after_resolve=stamp_nonce)


# exchange id -> installs the integrity check ccxt lacks (settings.verify_checksums switches all of them off)
VERIFIERS: dict[str, Callable[..., None]] = {"okx": install_okx_checksum, "kraken": install_kraken_checksum,
                                             "bybit": install_bybit_sequence_check}


def book_checksum(exchange_id: str, book: Any) -> int | None:
    """The venue checksum of a book after an update, where we know how to compute it (for BookUpdate)."""
    if exchange_id == "okx":
        return okx_book_checksum(book)
    if exchange_id == "kraken":
        return kraken_book_checksum(book)
    return None
