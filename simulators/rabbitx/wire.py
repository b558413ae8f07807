"""RabbitX / Centrifugo wire text built by the simulator (JSON, one message per line)."""

from __future__ import annotations

from typing import Any

import orjson

CLOSE_CODES = {
    3005: "connection expired",
    3008: "slow",
    3012: "no pong",
    3500: "invalid token",
    3501: "bad request",
}
ERRORS = {
    102: "unknown channel",
    103: "permission denied",
    105: "already subscribed",
    107: "bad request",
    109: "token expired",
}


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def push(channel: str, data: Any) -> str:
    return dumps({"push": {"channel": channel, "pub": {"data": data}}})


def reply(cmd_id: Any, method: str, result: Any) -> str:
    return dumps({"id": cmd_id, method: result})


def error(cmd_id: Any, code: int) -> str:
    return dumps({"id": cmd_id, "error": {"code": code, "message": ERRORS[code]}})


def _levels(levels: list[list[str]], numeric: bool) -> str:
    q = "" if numeric else '"'
    return "[" + ",".join(f"[{q}{p}{q},{q}{s}{q}]" for p, s in levels) + "]"


def book_push(market_id: str, bids: list[list[str]], asks: list[list[str]], sequence: int, timestamp: int,
              numeric: bool = False) -> str:
    """An orderbook push; with ``numeric`` the levels are JSON numbers (the venue's float form)."""
    return (f'{{"push":{{"channel":"orderbook:{market_id}","pub":{{"data":{{"market_id":"{market_id}",'
            f'"bids":{_levels(bids, numeric)},"asks":{_levels(asks, numeric)},'
            f'"sequence":{sequence},"timestamp":{timestamp}}}}}}}}}')
