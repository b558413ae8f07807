"""TokenSource: the RabbitX JWT: the configured one, renewed through ``POST /jwt`` with the refresh token."""

from __future__ import annotations

import logging

import aiohttp

from producers.core.errors import TerminalFeedError
from producers.core.numbers import loads_exact
from producers.rabbitx.settings import RabbitXSettings

log = logging.getLogger(__name__)


class TokenSource:
    def __init__(self, settings: RabbitXSettings) -> None:
        self.settings = settings
        self.token: str | None = settings.api_token.get_secret_value() if settings.api_token else None
        self._refresh = settings.refresh_token.get_secret_value() if settings.refresh_token else None
        self.renewals = 0

    @property
    def can_renew(self) -> bool:
        return bool(self._refresh and self.settings.rest_url)

    def invalidate(self) -> None:
        self.token = None

    async def get(self, http: aiohttp.ClientSession) -> str:
        if self.token is None:
            await self.renew(http)
        assert self.token is not None
        return self.token

    async def renew(self, http: aiohttp.ClientSession) -> str:
        """POST /jwt -> result[0].jwt. Refusal is terminal; network trouble raises for a retry."""
        if not self.can_renew:
            raise TerminalFeedError("rabbitx: the JWT is missing or expired and no refresh_token/rest_url is "
                                    "configured to renew it (set MARKETPIPE_API_TOKEN or MARKETPIPE_REFRESH_TOKEN)")
        url = f"{self.settings.rest_url}/jwt"
        async with http.post(url, json={"is_client": False, "refresh_token": self._refresh}) as resp:
            body = loads_exact(await resp.read())
            if resp.status in (400, 401, 403) or not body.get("success", False):
                raise TerminalFeedError(f"rabbitx: POST /jwt refused the refresh token (HTTP {resp.status}: "
                                        f"{body.get('error') or 'no reason'})")
            result = body["result"][0]
        self.token = str(result["jwt"])
        self._refresh = str(result.get("refresh_token") or self._refresh)
        self.renewals += 1
        log.info("rabbitx: JWT renewed (%d so far)", self.renewals)
        return self.token
