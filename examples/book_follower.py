"""Follow order books from marketpipe.book.v1 with the marketpipe.consumer library.

    MARKETPIPE_KAFKA_BOOTSTRAP=... MARKETPIPE_REGISTRY_URL=... \\
        python examples/book_follower.py --venue drift --group my-books          # live, until Ctrl-C
    python examples/book_follower.py --venue drift --until-end                     # read what is there, exit

Prints the top of book whenever an update changes it; at exit one JSON line per market with its final
state (in_sync, sequence, best bid/ask, depth). With --group the consumer group's committed offsets are used,
so a restart resumes where the last run stopped (then replayed books start out of sync until the next
SNAPSHOT or RESET + SNAPSHOT: the library tells you with `in_sync`).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from marketpipe.consumer import BookFollower, ConsumerSettings, EventStream
from schemas.topics import BOOK


async def follow(args: argparse.Namespace) -> BookFollower:
    settings = ConsumerSettings(consumer_group_id=args.group)  # Kafka + registry from MARKETPIPE_* env
    books = BookFollower()
    async with EventStream(settings, BOOK.name, venues=args.venue, markets=args.market,
                           stop_at_end=args.until_end) as stream:
        async for record in stream:
            book = books.apply(record.value)
            if args.quiet:
                continue
            if book.in_sync:
                bid, ask = book.best_bid(), book.best_ask()
                print(f"{book.venue}:{book.market} seq={book.sequence} bid={bid} ask={ask} spread={book.spread()}")
            else:
                print(f"{book.venue}:{book.market} out of sync ({book.resets[-1] if book.resets else 'no snapshot yet'})")
    return books


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venue", action="append", help="only this venue (repeatable)")
    parser.add_argument("--market", action="append", help="only this market (repeatable)")
    parser.add_argument("--group", help="consumer group id: resume from its committed offsets")
    parser.add_argument("--until-end", action="store_true", help="stop at the end of the topic")
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--quiet", action="store_true", help="only the final JSON lines")
    args = parser.parse_args()
    try:
        books = asyncio.run(follow(args))
    except KeyboardInterrupt:
        return
    for (venue, market), book in sorted(books.books.items()):
        print(json.dumps({"venue": venue, "market": market, "in_sync": book.in_sync, "sequence": book.sequence,
                          "best_bid": book.best_bid(), "best_ask": book.best_ask(), "resets": book.resets,
                          **book.depth(args.depth)}))


if __name__ == "__main__":
    main()
