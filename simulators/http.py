"""Serving an aiohttp application on 127.0.0.1 for the simulators (port 0 = a free one), JSON answers."""

from __future__ import annotations

import orjson
from aiohttp import web


async def serve_app(app: web.Application, port: int = 0, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """Start ``app``; returns its runner (``await runner.cleanup()`` stops it) and the bound port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # noqa: SLF001 - the only way to read the port bound for port 0
    assert server is not None
    return runner, int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
