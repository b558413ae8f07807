"""Service entry point: ``producers.econia.main(settings=None)`` (``marketpipe produce econia``)."""

from __future__ import annotations

from producers.core.runtime import run_feed_service
from producers.econia.feed import EconiaFeed
from producers.econia.settings import EconiaSettings


async def run(settings: EconiaSettings) -> None:
    """Run the feed until cancelled (tests and embedding); ``main`` adds signals and exit codes."""
    await EconiaFeed(settings).run()


def main(settings: EconiaSettings | None = None) -> int:
    s = settings or EconiaSettings()
    return run_feed_service(lambda: EconiaFeed(s), log_level=s.log_level, name="econia")
