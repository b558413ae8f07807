"""Backoff: capped exponential delays with jitter, reset once a connection proved healthy."""

from __future__ import annotations

import random


class Backoff:
    """delay(n) = min(cap, initial * 2**n) scaled by a random factor in [1 - jitter, 1 + jitter]."""

    def __init__(self, initial: float, cap: float, jitter: float = 0.5, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        base = min(self.cap, self.initial * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return max(0.0, base * (1 + self.jitter * (2 * self._rng.random() - 1)))

    def reset(self) -> None:
        self.attempt = 0
