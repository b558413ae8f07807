"""Settings read at a service's start, with every problem reported at once, one line per setting.

``load(cls, **overrides)`` builds a pydantic-settings class from the environment; on any problem it
raises ``SettingsProblem`` whose ``lines`` name the environment variable, its value and what is wrong, e.g.
``MARKETPIPE_HEALTH_PORT=99999: Input should be less than or equal to 65535``. The CLI prints them and
exits with status 2.
"""

from __future__ import annotations

import os
import re
from typing import Any, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsError

S = TypeVar("S", bound=BaseSettings)

_MAX_VALUE = 80


class SettingsProblem(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def env_name(cls: type[BaseSettings], field: str) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def _is_secret(cls: type[BaseSettings], field: str) -> bool:
    info = cls.model_fields.get(field)
    return info is not None and "SecretStr" in repr(info.annotation)


def _shown(cls: type[BaseSettings], field: str, value: Any) -> str:
    if _is_secret(cls, field) or isinstance(value, SecretStr):
        return "***"
    text = os.environ.get(env_name(cls, field))
    if text is None:
        text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE] + "..."


def _message(error: Any) -> str:
    msg = str(error.get("msg", ""))
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def describe(cls: type[BaseSettings], exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else ""
        if field in cls.model_fields:
            lines.append(f"{env_name(cls, field)}={_shown(cls, field, error.get('input'))}: {_message(error)}")
        else:
            lines.append(_message(error))
    return lines


def load(cls: type[S], **overrides: Any) -> S:
    """``cls(**overrides)`` (the environment fills the rest), or ``SettingsProblem`` naming every bad setting."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise SettingsProblem(describe(cls, exc)) from None
    except SettingsError as exc:  # a complex value (dict, JSON) that does not parse at all
        match = re.search(r'field "(\w+)"', str(exc))
        if not match:
            raise SettingsProblem([str(exc)]) from None
        field = match.group(1)
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise SettingsProblem([f"{env_name(cls, field)}={_shown(cls, field, None)}: not valid JSON{cause}"]) from None
