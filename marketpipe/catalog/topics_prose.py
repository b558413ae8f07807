"""What a consumer must know about each topic that the Avro schema cannot say (ordering, protocol, gaps).

The facts that *can* be derived (names, partitions, keys, subjects, schemas, retention) come from
`schemas/topics.py` and `schemas/avro`; this module adds only the rules, one entry per topic. A topic added
to `schemas.topics.ALL_TOPICS` without an entry here makes `marketpipe schemas asyncapi` fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import topics

DEDUP_RULE = (
    "Every event carries a deterministic `event_id`. Delivery is at-least-once: after a producer or "
    "processor restart an event may be delivered again with the same `event_id`. Consumers drop "
    "duplicates by `event_id` (a bounded window of recent ids per key is enough: duplicates are "
    "re-deliveries of recent events)."
)

ORDERING_RULE = (
    "The record key is UTF-8 text `<venue>:<market>` (account topic: `<venue>:<account>`), not Avro. Kafka's "
    "default murmur2 partitioner maps a key to one partition, so all events of a market (or account) are in "
    "one partition in the order the producer published them. There is no order across keys or partitions."
)

BOOK_PROTOCOL = """\
Book updates of a market follow one protocol (`kind`):

- **SNAPSHOT** replaces the whole book (both sides, best first) and puts it in sync. A snapshot whose
  `sequence` is below the in-sync book's sequence is stale and ignored.
- **DELTA** sets absolute sizes per level; size `"0"` deletes the level. Applied only while in sync. A delta
  whose `sequence` is not newer than the book's is stale (a re-delivery) and dropped. A delta whose
  `prev_sequence` does not equal the book's `sequence` is a **gap**: discard the book and wait for the next
  SNAPSHOT. `sequence`/`prev_sequence` are null for venues without sequence numbers (then deltas chain by
  per-partition order alone).
- **RESET** (with a `reason`: gap, checksum, reconnect, crossed, ...) discards the book; wait for the next
  SNAPSHOT. Deltas that arrive while waiting are dropped.

Producers publish RESET then SNAPSHOT whenever they lose sync with the venue, so a consumer that follows
these rules is never silently wrong: it is either in sync or knows it is not. Levels are compared by
decimal value (`"100.0"` and `"100.00"` are one level); prices and sizes are exact decimal text."""

GAP_RULE_TEMPLATE = """\
**Gap markers.** A record whose `gap` field is set is not {what}: it says, in per-key order, "{events} of this
key may be missing here" (`reason`, `after_id`/`before_id` around the hole when known, `missing_count` when
ids are consecutive, window `from_ts`..`to_ts`). Its other payload fields carry no data. **Check `gap`
first.** Producers recover over the venue's REST API before they mark, so a marker covers only what the venue
could not replay."""

CANDLE_GAP_RULE = """\
**Gap candles.** `gap: true` means a gap marker's window overlaps this interval: trades may be missing, so the
candle may be short. An interval inside a gap with no trade at all is published as an empty gap candle
(`trade_count` 0, every price and volume `"0"`): check `gap` before reading figures. A candle is re-published
with `revision + 1` when a late trade or a late gap marker amends it; keep the highest revision per
(`interval`, `start_ts`). Intervals without trades (and outside gaps) produce no candle."""


@dataclass(frozen=True)
class TopicProse:
    title: str
    summary: str
    producer: str
    rules: tuple[str, ...] = ()


PROSE: dict[str, TopicProse] = {
    topics.TRADES.name: TopicProse(
        "Trades", "Executed public trades (the tape) per market.", "venue producers (`marketpipe produce`)",
        (GAP_RULE_TEMPLATE.format(what="a trade (price and size `\"0\"`, `trade_id` `gap:<after>:<before>`)",
                                  events="Trades"),)),
    topics.BOOK.name: TopicProse(
        "Order book updates", "L2 order book SNAPSHOT / DELTA / RESET updates per market, on one topic so "
        "per-market order holds.", "venue producers (`marketpipe produce`)", (BOOK_PROTOCOL,)),
    topics.TICKER.name: TopicProse(
        "Tickers", "Market statistics as the venue publishes them; absent fields are null.",
        "venue producers (`marketpipe produce`)"),
    topics.VENUE_CANDLES.name: TopicProse(
        "Venue candles", "OHLCV candles as the venue publishes them (`closed` marks the final one).",
        "venue producers (`marketpipe produce`)"),
    topics.ACCOUNT.name: TopicProse(
        "Account events", "Balance, order, fill and position changes of the configured trading accounts; "
        "exactly the field named by `kind` is set.", "venue producers (`marketpipe produce`)",
        (GAP_RULE_TEMPLATE.format(what="an account change (no payload field is set)",
                                  events="Account events of `kind`"),)),
    topics.BOOK_TOP.name: TopicProse(
        "Top of book (derived)", "Best bid/ask, sizes, spread, mid and the first levels per side of the book "
        "materialized by the processors; published at most once per rate-limit interval per market, and at "
        "once when `in_sync` or `crossed` flips.", "processors (`marketpipe process`)",
        ("`in_sync: false` means the processor discarded the book (RESET or gap) and waits for a SNAPSHOT: "
         "its price fields are then null and its level lists empty.",)),
    topics.OHLCV.name: TopicProse(
        "OHLCV candles (derived)", "Candles built by the processors from trades by event time "
        "(`exchange_ts`), per configured interval.", "processors (`marketpipe process`)", (CANDLE_GAP_RULE,)),
}


def prose(spec: topics.TopicSpec) -> TopicProse:
    try:
        return PROSE[spec.name]
    except KeyError:
        raise KeyError(f"topic {spec.name} has no consumer-facing description in marketpipe/catalog/topics_prose.py"
                       ) from None
