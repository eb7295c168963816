"""Bearer API keys in two scopes.

- ``RJ_API_KEYS`` (plain): score, reward, rate and read. When settings name any key, every /v1 route needs one.
- ``RJ_ADMIN_KEYS``: also change what others get: publish rubrics, activate or reload reward models, create
  jobs from a server-side path. With keys configured but no admin key, nobody may (a plain key never can).
"""

from __future__ import annotations

import hmac

from fastapi import Request

from api.deps import RuntimeDep
from judge.errors import Forbidden, Unauthorized
from judge.settings import Settings


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def _matches(token: str, keys: frozenset[str]) -> bool:
    # Constant-time comparison against each key: no timing hint about which prefix matched.
    return any(hmac.compare_digest(token.encode(), key.encode()) for key in keys)


async def require_api_key(request: Request, runtime: RuntimeDep) -> None:
    keys = runtime.settings.api_key_set()
    if not keys:
        return
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("missing bearer API key", field="Authorization")
    if not _matches(token, keys):
        raise Unauthorized("invalid API key", field="Authorization")


def check_admin(request: Request, settings: Settings) -> None:
    """Forbidden unless the request carries an admin key (or no key of any kind is configured: a dev setup)."""
    admin = settings.admin_key_set()
    if not admin and not settings.api_key_set():
        return
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("missing bearer API key", field="Authorization")
    if not admin:
        raise Forbidden("this route changes what every client gets; set RJ_ADMIN_KEYS and use an admin key",
                        field="Authorization")  # fmt: skip
    if not _matches(token, admin):
        raise Forbidden("this route needs an admin key (RJ_ADMIN_KEYS); a plain API key may not",
                        field="Authorization")  # fmt: skip


async def require_admin_key(request: Request, runtime: RuntimeDep) -> None:
    check_admin(request, runtime.settings)
