"""Centrifugo JSON protocol facts as RabbitX uses them (see venues.md §1).

Close codes 3000-3499 are non-terminal (reconnect; 3005 = token expired: renew it first),
3500-3999 are terminal (3500 invalid token, 3501 bad request, 3503 force disconnect, ...).
Reply error 109 = token expired at connect/refresh (renew and reconnect); 102 unknown channel and
103 permission denied are configuration errors (terminal); 105 already subscribed is harmless;
100/111/112 are temporary (reconnect after backoff).
Server unsubscribe pushes with code >= 2500 mean "resubscribe".
"""

from __future__ import annotations

from typing import Any

CONNECTION_EXPIRED = 3005
TOKEN_EXPIRED = 109
ALREADY_SUBSCRIBED = 105
TEMPORARY_REPLY_ERRORS = {100: "internal server error", 111: "too many requests", 112: "unrecoverable position"}
TERMINAL_REPLY_ERRORS = {101: "unauthorized", 102: "unknown channel", 103: "permission denied", 107: "bad request"}


def is_terminal_close(code: int | None) -> bool:
    return code is not None and 3500 <= code <= 3999


def channels_for(markets: list[str], account_id: str | None) -> list[str]:
    out = [f"{kind}:{m}" for m in markets for kind in ("orderbook", "trade", "market")]
    if account_id:
        out.append(f"account@{account_id}")
    return out


def error_of(reply: dict[str, Any]) -> tuple[int, str] | None:
    err = reply.get("error")
    if not err:
        return None
    return int(err.get("code", 0)), str(err.get("message", ""))
