"""Build the ccxt.pro exchange the producer watches: credentials, options, URL overrides, exactness.

- ``rest_base_override`` rewrites every ``https://`` URL under ``exchange.urls['api']`` to the given base,
  keeping the path (``https://api.binance.com/api/v3`` -> ``http://127.0.0.1:PORT/api/v3``); templated
  hosts (``https://{hostname}``, OKX) become the base itself. ``url_overrides`` then sets single entries
  by dotted path (``api.ws.spot``, ``api.ws``). Both are how tests point ccxt at the simulators.
- Exactness (see ``exact.py``): ``exchange.number = str`` and instance ``safe_float*`` that keep text.
- Books: journaled order books (``journal.py``), the checksum verifiers ccxt lacks (``checksums.py``) and
  the per-connection sequence checks it lacks (``coinbase.py``).
- Venues whose wire numbers are JSON numbers (:data:`JSON_NUMBER_VENUES`, Kraken v2) are decoded as text.
- Malformed venue messages are skipped without killing ccxt's socket reader (``guard.py``).
- Hot paths (``fence.install_hot_paths``): Binance's per-message dispatch and ccxt's ``iso8601``.
"""

from __future__ import annotations

import logging
from typing import Any

import ccxt.pro as ccxtpro

from producers.ccxt.checksums import VERIFIERS
from producers.ccxt.coinbase import SEQUENCE_CHECKS, TRADE_SNAPSHOT_CHECKS
from producers.ccxt.fence import (
    check_ccxt_version,
    install_exact_json,
    install_hot_paths,
    install_message_guard,
    keep_exact_text,
)
from producers.ccxt.guard import Malformed
from producers.ccxt.journal import install_journaled_books
from producers.ccxt.settings import CcxtSettings

log = logging.getLogger(__name__)

# exchanges sending prices/sizes as JSON numbers whose digits matter (checksums, trailing zeros): their sockets
# decode numbers as text (fence.install_exact_json) so no float ever holds a price
JSON_NUMBER_VENUES = frozenset({"kraken"})


def _rewrite(node: Any, base: str) -> Any:
    if isinstance(node, dict):
        return {k: _rewrite(v, base) for k, v in node.items()}
    if isinstance(node, str) and node.startswith("https://"):
        rest = node[len("https://"):]
        path = rest.split("/", 1)[1] if "/" in rest else ""
        return base.rstrip("/") + ("/" + path if path else "")
    return node


def _set_path(urls: dict[str, Any], dotted: str, value: str) -> None:
    parts = dotted.split(".")
    node = urls
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def build_exchange(settings: CcxtSettings, *, on_checksum_mismatch: Any = None,
                   on_malformed: Malformed | None = None, on_trade_hole: Any = None) -> Any:
    check_ccxt_version()
    cls = getattr(ccxtpro, settings.exchange, None)
    if cls is None:
        raise ValueError(f"ccxt.pro has no exchange {settings.exchange!r} (see ccxt.pro.exchanges)")
    config: dict[str, Any] = {"enableRateLimit": True, **settings.ccxt_config}
    if settings.api_key is not None:
        config["apiKey"] = settings.api_key.get_secret_value()
    if settings.api_secret is not None:
        config["secret"] = settings.api_secret.get_secret_value()
    if settings.api_password is not None:
        config["password"] = settings.api_password.get_secret_value()
    exchange = cls(config)
    if settings.ccxt_options:
        exchange.options = exchange.deep_extend(exchange.options, settings.ccxt_options)
    if settings.rest_base_override:
        exchange.urls["api"] = {k: (v if k == "ws" else _rewrite(v, settings.rest_base_override))
                                for k, v in exchange.urls["api"].items()}
    for dotted, value in settings.url_overrides.items():
        _set_path(exchange.urls, dotted, value)
    keep_exact_text(exchange)
    if exchange.id in JSON_NUMBER_VENUES:
        install_exact_json(exchange)
    install_journaled_books(exchange)
    install_hot_paths(exchange)  # before the checks and the guard: they wrap whatever handle_message is then
    snapshot_check = TRADE_SNAPSHOT_CHECKS.get(exchange.id)
    if snapshot_check is not None and on_trade_hole is not None:  # inside the sequence check: sees what ccxt sees
        snapshot_check(exchange, on_trade_hole)
    sequence_check = SEQUENCE_CHECKS.get(exchange.id)
    if sequence_check is not None and settings.check_sequence:  # before the guard: the guard wraps it too
        sequence_check(exchange, settings.venue_id())
    if on_malformed is not None:
        install_message_guard(exchange, on_malformed)
    verifier = VERIFIERS.get(exchange.id)
    if verifier is not None and settings.verify_checksums:
        verifier(exchange, on_checksum_mismatch)
    return exchange
