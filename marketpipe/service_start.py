"""Starting a long-running service from the CLI: settings checked first (every problem at once, exit 2), then
Kafka and the registry reached (or one line naming the URL and the setting, exit 2), then the service."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from marketpipe import preflight
from marketpipe.settings_check import SettingsProblem, load
from marketpipe.venues import Venue, load_settings_class

CONFIG_ERROR = 2


def _say(prog: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"{prog}: {line}", file=sys.stderr, flush=True)
    return say


def venue_overrides(venue: Venue) -> tuple[dict[str, Any], list[str]]:
    """Settings the venue fixes (ccxt exchanges: MARKETPIPE_EXCHANGE), and conflicts with the environment."""
    overrides: dict[str, Any] = {}
    problems = []
    for env, value in venue.env.items():
        given = os.environ.get(env)
        if given is not None and given.lower() != value:
            problems.append(f"{env}={given}: `produce {venue.name}` runs {value}; unset it, or run "
                            f"`produce {given.lower()}` (or `produce ccxt` for a ccxt exchange not in the registry)")
        overrides[env.removeprefix("MARKETPIPE_").lower()] = value
    for env in venue.required_env:
        if not os.environ.get(env):
            problems.append(f"{env}=: `produce {venue.name}` needs it set ({venue.summary})")
    return overrides, problems


def run_producer(venue: Venue, prog: str) -> int:
    say = _say(prog)
    overrides, problems = venue_overrides(venue)
    settings: Any = None
    try:
        settings = load(load_settings_class(venue), **overrides)
    except SettingsProblem as exc:
        problems += exc.lines
    if problems or settings is None:
        for line in problems:
            say(line)
        return CONFIG_ERROR
    if not preflight.wait_for_outputs(settings, say):
        return CONFIG_ERROR
    module = importlib.import_module(venue.producer_module)
    return int(module.main(settings) or 0)


def run_processor(prog: str, web_port: int | None, app_id: str | None) -> int:
    from processors.settings import ProcessorSettings

    say = _say(prog)
    overrides = {k: v for k, v in {"processor_web_port": web_port, "processor_app_id": app_id}.items()
                 if v is not None}
    try:
        settings = load(ProcessorSettings, **overrides)
    except SettingsProblem as exc:
        for line in exc.lines:
            say(line)
        return CONFIG_ERROR
    problem = preflight.ensure_dir(settings.processor_data_dir, "MARKETPIPE_PROCESSOR_DATA_DIR")
    if problem:
        say(problem)
        return CONFIG_ERROR
    if not preflight.wait_for_outputs(settings, say):
        return CONFIG_ERROR
    import processors

    argv = [*(["--web-port", str(web_port)] if web_port is not None else []),
            *(["--app-id", app_id] if app_id is not None else [])]
    return int(processors.main(argv) or 0)
