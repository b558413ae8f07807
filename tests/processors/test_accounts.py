"""Account state after a scripted order lifecycle, read back through the query endpoints."""

from __future__ import annotations

from tests.processors.harness import EventWriter, Worker, get_json, poll_json


def order(oid: str, status: str, filled: str, *, side: str = "BUY", price: str = "100.5", size: str = "2",
          remaining: str | None = None, avg: str | None = None) -> dict:
    return {"order_id": oid, "client_order_id": None, "side": side, "order_type": "limit", "status": status,
            "price": price, "size": size, "filled_size": filled, "remaining_size": remaining,
            "average_price": avg, "venue_status": status.lower()}


def fill(fid: str, oid: str, size: str, price: str = "100.5") -> dict:
    return {"fill_id": fid, "order_id": oid, "side": "BUY", "price": price, "size": size, "fee": "0.01",
            "fee_asset": "USD", "is_maker": True}


def position(side: str, size: str, entry: str | None) -> dict:
    return {"side": side, "size": size, "entry_price": entry, "mark_price": None, "liquidation_price": None,
            "unrealized_pnl": None, "margin": None}


async def test_account_state_after_order_lifecycle(ready_worker: Worker, writer: EventWriter, unique: str) -> None:
    venue, acct = f"ta{unique}", "acct-1"
    a = lambda market, kind, body: writer.account(venue, acct, market, kind, body)  # noqa: E731
    await a("*", "BALANCE", {"asset": "USD", "total": "1000.00", "available": "1000.00", "locked": "0"})
    await a("BTC-PERP", "ORDER", order("o1", "NEW", "0", remaining="2"))
    await a("BTC-PERP", "ORDER", order("o2", "NEW", "0", side="SELL", price="105", size="1"))
    await a("BTC-PERP", "ORDER", order("o1", "PARTIALLY_FILLED", "0.5", remaining="1.5", avg="100.5"))
    await a("BTC-PERP", "FILL", fill("f1", "o1", "0.5"))
    await a("BTC-PERP", "ORDER", order("o1", "NEW", "0", remaining="2"))  # stale re-send: ignored
    await a("BTC-PERP", "ORDER", order("o2", "CANCELLED", "0", side="SELL", price="105", size="1"))
    await a("BTC-PERP", "ORDER", order("o1", "FILLED", "2", remaining="0", avg="100.5"))
    await a("BTC-PERP", "FILL", fill("f2", "o1", "1.5"))
    await a("BTC-PERP", "FILL", fill("f2", "o1", "1.5"))  # duplicate fill: kept once
    await a("BTC-PERP", "ORDER", order("o2", "NEW", "0", side="SELL", price="105", size="1"))  # after terminal
    await a("BTC-PERP", "POSITION", position("LONG", "2", "100.5"))
    await a("ETH-PERP", "POSITION", position("SHORT", "1", "2000"))
    await a("ETH-PERP", "POSITION", position("FLAT", "0", None))
    await a("*", "BALANCE", {"asset": "USD", "total": "799.00", "available": "694.50", "locked": "104.50"})
    await a("BTC-PERP", "ORDER", order("o3", "NEW", "0", price="99.25", size="1.05"))
    await writer.flush()

    base = f"{ready_worker.url}/accounts/{venue}/{acct}"
    body = await poll_json(f"{base}/orders", lambda st, b: st == 200 and any(o["order_id"] == "o3"
                                                                             for o in b["orders"]))
    assert [(o["order_id"], o["status"], o["size"], o["price"]) for o in body["orders"]] == [
        ("o3", "NEW", "1.05", "99.25")]
    _, body = await get_json(f"{base}/orders?status=closed")
    assert [(o["order_id"], o["status"], o["filled_size"]) for o in body["orders"]] == [
        ("o2", "CANCELLED", "0"), ("o1", "FILLED", "2")]
    _, body = await get_json(f"{base}/orders?status=all")
    assert {o["order_id"] for o in body["orders"]} == {"o1", "o2", "o3"}
    _, body = await get_json(f"{base}/balances")
    usd = body["balances"]["USD"]
    assert (usd["total"], usd["available"], usd["locked"]) == ("799.00", "694.50", "104.50")
    _, body = await get_json(f"{base}/positions")
    assert list(body["positions"]) == ["BTC-PERP"]
    assert (body["positions"]["BTC-PERP"]["side"], body["positions"]["BTC-PERP"]["size"]) == ("LONG", "2")
    _, body = await get_json(f"{base}/fills")
    assert [(f["fill_id"], f["size"]) for f in body["fills"]] == [("f1", "0.5"), ("f2", "1.5")]
    _, body = await get_json(f"{base}/fills?limit=1")
    assert [f["fill_id"] for f in body["fills"]] == ["f2"]
