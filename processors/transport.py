"""Parts of the processors' faust transport built on public APIs only.

`first_step` runs a coroutine up to its first suspension: the drain loop in `processors/faust_fence.py`
(`FastDrainConsumer`, with everything else that reaches into faust's private members) delivers a message
with it without a task per message. `RawBytesSchema` decodes raw topics without faust's serializer registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, cast

import faust


class _Resume:
    """Awaitable that continues `coro`, which already ran its first step and is suspended on `waiting`
    (what the coroutine yielded to its task): the same protocol a Task uses to drive a coroutine."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coro, self.waiting = coro, waiting

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded = self.coro, self.waiting
        while True:
            try:
                value = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like go into the coroutine
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration as stop:
                    return stop.value


def first_step(awaitable: Awaitable[Any]) -> _Resume | None:
    """Run a coroutine until it first suspends: None when it completed, else an awaitable for the rest.
    (Typed as faust types its handlers, Awaitable; what they return are coroutines.)"""
    coro = cast(Coroutine[Any, Any, Any], awaitable)
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return _Resume(coro, waiting)


class RawBytesSchema(faust.Schema):
    """Raw bytes keys and values whose events are built without faust's serializer registry.

    For raw topics faust's compiled decode runs both payloads through `app.serializers` (registry, codec
    lookup, `want_bytes`) only to return the bytes it was given, then builds the Event. This decode builds
    the same Event from the message's key and value directly (None stays None). Sending (dumps) is faust's.
    The upstream decode it replaces (`Schema.compile`, `App.create_event`) is fingerprinted in faust_fence."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def compile(self, app: Any, *, on_key_decode_error: Any = None, on_value_decode_error: Any = None,
                default_propagate: bool = False) -> Any:
        event_type = app.conf.Event

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            return event_type(app, message.key, message.value, message.headers, message)

        return decode
