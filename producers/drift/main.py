"""Service entry point: ``producers.drift.main(settings=None)`` (``marketpipe produce drift``)."""

from __future__ import annotations

from producers.core.runtime import run_feed_service
from producers.drift.feed import DriftFeed
from producers.drift.settings import DriftSettings


async def run(settings: DriftSettings) -> None:
    """Run the feed until cancelled (tests and embedding); ``main`` adds signals and exit codes."""
    await DriftFeed(settings).run()


def main(settings: DriftSettings | None = None) -> int:
    s = settings or DriftSettings()
    return run_feed_service(lambda: DriftFeed(s), log_level=s.log_level, name="drift")
