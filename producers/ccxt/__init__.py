"""The ccxt.pro unified producer: any exchange ccxt supports -> marketpipe's normalized Kafka events.

Entry points: ``await run(settings=None)`` runs ``CcxtFeed`` until cancelled (SIGTERM/SIGINT cancel it,
so the publisher flushes before exit); ``main(settings=None)`` is the blocking CLI form (exit code 0 on a
clean stop, 2 when the settings name an unknown exchange or market). Settings come from the environment,
prefix ``MARKETPIPE_`` (see ``settings.py``).
"""

from __future__ import annotations

from producers.ccxt.feed import CcxtFeed
from producers.ccxt.fence import CcxtVersionMismatch
from producers.ccxt.settings import CcxtSettings
from producers.core.runtime import run_feed_service

__all__ = ["CcxtFeed", "CcxtSettings", "main", "run"]

async def run(settings: CcxtSettings | None = None) -> None:
    """Run the feed until cancelled (tests and embedding); ``main`` adds signals and exit codes."""
    await CcxtFeed(settings or CcxtSettings()).run()


def main(settings: CcxtSettings | None = None) -> int:
    s = settings or CcxtSettings()
    # an unknown exchange or market, or a ccxt other than the pinned one: configuration errors, not retried
    return run_feed_service(lambda: CcxtFeed(s), log_level=s.log_level, name="ccxt",
                            config_errors=(ValueError, CcxtVersionMismatch))
