"""Exceptions a venue module raises to steer the connection core.

- ``TerminalFeedError``: stop the feed with a clear message (bad credentials, permission denied,
  protocol mismatch). The core does not reconnect; ``Feed.run()`` re-raises it.
- ``ReconnectRequested``: drop this connection and reconnect (after backoff), e.g. a close code the
  venue documents as non-terminal, or a resubscribe the venue cannot do in place.
- ``InexactNumber``: a price/size arrived as a JSON float; the core re-parses that message with
  ``Decimal`` numbers and calls the handler again (see ``producers.core.numbers``).
"""

from __future__ import annotations


class TerminalFeedError(RuntimeError):
    """The venue refused us in a way reconnecting cannot fix."""


class ReconnectRequested(Exception):
    """Close the current connection and reconnect."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InexactNumber(ValueError):
    """A money value was parsed as a binary float; it must be re-read as exact decimal text."""
