"""Help for the `marketpipe` command line: every option shows its default, and `produce <venue> --help`
lists the venue's ``MARKETPIPE_*`` settings, generated from its pydantic-settings class.

``Parser`` records the actions and sub-parsers it is given (public return values of ``add_argument`` /
``add_parser``), so tests can walk the whole command tree, and fills its epilog only when help is shown
(settings classes import their whole producer: seconds, not worth paying on every command).
"""

from __future__ import annotations

import argparse
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

if typing.TYPE_CHECKING:
    from pydantic import BaseModel


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after every option's help; descriptions and epilogs keep their line breaks."""


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, epilog_factory: Callable[[], str] | None = None, **kwargs: Any) -> None:
        self.recorded_actions: list[argparse.Action] = []
        self.subcommands: dict[str, Parser] = {}
        self.epilog_factory = epilog_factory
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.recorded_actions.append(action)
        return action

    def add_command(self, sub: Any, name: str, **kwargs: Any) -> Parser:
        """``sub.add_parser(name, **kwargs)``, remembered; ``help`` doubles as the description."""
        kwargs.setdefault("description", kwargs.get("help"))
        parser: Parser = sub.add_parser(name, **kwargs)
        self.subcommands[name] = parser
        return parser

    def format_help(self) -> str:
        if self.epilog_factory is not None and self.epilog is None:
            self.epilog = self.epilog_factory()
        return super().format_help()

    def walk(self) -> Iterator[Parser]:
        """This parser and every sub-command parser below it."""
        yield self
        for child in self.subcommands.values():
            yield from child.walk()


# -- settings tables ------------------------------------------------------------------------------------

_FIELD = re.compile(r"^    (\w+)\s*:[^#]*?(?:#\s*(.*))?$")
_COMMENT = re.compile(r"^    #\s?(.*)$")


def field_comments(cls: type) -> dict[str, str]:
    """The comment beside (or the comment lines right above) each field in the class bodies of ``cls``'s MRO;
    the most derived class wins."""
    from pydantic import BaseModel

    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass.__module__.startswith("pydantic"):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        above: list[str] = []
        for line in lines:
            comment = _COMMENT.match(line)
            if comment:
                above.append(comment.group(1).strip())
                continue
            field = _FIELD.match(line)
            if field and field.group(1) in getattr(klass, "__annotations__", {}):
                text = field.group(2) or " ".join(above)
                if text:
                    comments[field.group(1)] = text.strip()
            above = []
    return comments


def _type_name(annotation: Any) -> str:
    """``str``, ``int | unset``, ``one of PLAIN|SSL``, ``list[str]``: what a person types in the variable."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return "one of " + "|".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " | ".join(names) + (" | unset" if type(None) in args else "")
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _all_metadata(info: Any) -> list[Any]:
    """Constraints on the field and inside Annotated[...] members of an optional type."""
    found = list(info.metadata)
    for arg in typing.get_args(info.annotation):
        if typing.get_origin(arg) is typing.Annotated:
            for extra in typing.get_args(arg)[1:]:
                found.extend(getattr(extra, "metadata", [extra]))
    return found


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign}{value:g}" if isinstance(value, float) else f"{sign}{value}")
    return f" ({', '.join(parts)})" if parts else ""


def _default(info: Any) -> str:
    from pydantic_core import PydanticUndefined

    if "SecretStr" in repr(info.annotation):
        return "unset" if info.default is None else "***"
    value = info.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "empty"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value) if value != "" else "empty"


def settings_table(cls: type[BaseModel], *, fixed: dict[str, str] | None = None) -> str:
    """One entry per field of a pydantic-settings class: environment variable, type, default, comment."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    comments = field_comments(cls)
    fixed = fixed or {}
    out = [f"settings (environment variables; {cls.__module__}.{cls.__name__}):"]
    for name, info in cls.model_fields.items():
        env = f"{prefix}{name}".upper()
        kind = _type_name(info.annotation) + _bounds(_all_metadata(info))
        default = f"set to {fixed[env]} by this venue" if env in fixed else f"default {_default(info)}"
        out.append(f"  {env} ({kind}; {default})")
        if name in comments:
            out.append(f"      {comments[name]}")
    out.append("Lists: comma-separated or a JSON array. Invalid settings stop the service with exit status 2,")
    out.append("one line each.")
    return "\n".join(out)
