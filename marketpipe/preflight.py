"""Before a service starts: are Kafka and the schema registry reachable, and do its directories exist?

``wait_for_outputs(settings, say)`` tries both; while either is unreachable it says so in one line naming the
URL and the setting, then waits with a growing delay (1, 2, 4 ... 10 s) and a countdown, for at most
``MARKETPIPE_STARTUP_WAIT_S`` seconds (0: not at all). It returns False when time is up: the caller exits
with status 2. Kafka counts as reachable when one bootstrap server accepts a TCP connection; the registry
when its URL answers HTTP at all (any status: authentication and paths are the service's business).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from marketpipe.settings import KafkaClientSettings

CONNECT_TIMEOUT_S = 3.0
MAX_DELAY_S = 10.0


def kafka_problem(bootstrap: str) -> str | None:
    """None when a bootstrap server accepts a TCP connection, else what went wrong."""
    reasons = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
                return None
        except OSError as exc:
            reasons.append(f"{server.strip()}: {exc.strerror or exc}")
    return "; ".join(reasons)


def registry_problem(url: str) -> str | None:
    """None when the registry URL answers HTTP (any status), else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        reason = exc.reason
        return str(getattr(reason, "strerror", None) or reason)
    except (OSError, ValueError) as exc:
        return str(exc)


def unreachable(settings: KafkaClientSettings, kafka: bool = True,
                registry_source: str = "MARKETPIPE_REGISTRY_URL") -> list[str]:
    lines = []
    problem = kafka_problem(settings.kafka_bootstrap) if kafka else None
    if problem is not None:
        lines.append(f"Kafka unreachable at {settings.kafka_bootstrap} (MARKETPIPE_KAFKA_BOOTSTRAP): {problem}")
    problem = registry_problem(settings.registry_url)
    if problem is not None:
        lines.append(f"schema registry unreachable at {settings.registry_url} ({registry_source}): {problem}")
    return lines


def wait_for_outputs(settings: KafkaClientSettings, say: Callable[[str], None],
                     sleep: Callable[[float], None] = time.sleep, *, kafka: bool = True,
                     registry_source: str = "MARKETPIPE_REGISTRY_URL") -> bool:
    deadline = time.monotonic() + settings.startup_wait_s
    delay = 1.0
    while True:
        problems = unreachable(settings, kafka, registry_source)
        if not problems:
            return True
        for line in problems:
            say(line)
        left = deadline - time.monotonic()
        if left <= 0:
            if settings.startup_wait_s:
                say(f"gave up after {settings.startup_wait_s:g}s (MARKETPIPE_STARTUP_WAIT_S)")
            return False
        pause = min(delay, left)
        say(f"retrying in {pause:.0f}s ({left:.0f}s left of MARKETPIPE_STARTUP_WAIT_S={settings.startup_wait_s:g})")
        sleep(pause)
        delay = min(delay * 2, MAX_DELAY_S)


def ensure_dir(path: str, setting: str) -> str | None:
    """Create ``path`` (and parents); None when it exists afterwards, else one line naming the setting."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{setting}={path}: cannot create the directory: {exc.strerror or exc}"
    return None
