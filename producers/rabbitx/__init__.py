"""RabbitX producer: ``RabbitXFeed`` (Centrifugo WebSocket -> Kafka) and ``RabbitXSettings``.

Entry points: ``await run(settings=None)`` runs the feed until cancelled; ``main(settings=None)`` is the
blocking CLI form (returns a process exit code: 0 on a clean stop, 2 on a terminal venue error).
"""

from __future__ import annotations

from producers.core.runtime import run_feed_service
from producers.rabbitx.feed import RabbitXFeed
from producers.rabbitx.settings import RabbitXSettings

__all__ = ["RabbitXFeed", "RabbitXSettings", "main", "run"]


async def run(settings: RabbitXSettings | None = None) -> None:
    await RabbitXFeed(settings or RabbitXSettings()).run()


def main(settings: RabbitXSettings | None = None) -> int:
    s = settings or RabbitXSettings()
    return run_feed_service(lambda: RabbitXFeed(s), log_level=s.log_level, name="rabbitx")
