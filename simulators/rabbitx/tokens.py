"""JWT issuing and checking for the RabbitX simulator (HS256, PyJWT): ``sub`` = profile id, ``exp``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


@dataclass
class TokenAuthority:
    secret: str = "rabbitx-simulator-hs256-secret-key-0123456789"
    ttl: float = 48 * 3600.0

    def issue(self, profile_id: str, *, ttl: float | None = None, now: float | None = None) -> str:
        now = time.time() if now is None else now
        exp = int(now + (self.ttl if ttl is None else ttl))
        return jwt.encode({"sub": profile_id, "iat": int(now), "exp": exp}, self.secret, algorithm="HS256")

    def verify(self, token: str) -> dict:
        """Claims of a valid token; TokenExpired / TokenInvalid otherwise."""
        try:
            return jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired(str(exc)) from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from exc
