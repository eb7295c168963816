"""Optional bearer API keys: when settings name any, every /v1 route requires one."""

from __future__ import annotations

import hmac

from fastapi import Request

from api.deps import RuntimeDep
from judge.errors import Unauthorized


async def require_api_key(request: Request, runtime: RuntimeDep) -> None:
    keys = runtime.settings.api_key_set()
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer API key", field="Authorization")
    # Constant-time comparison against each key: no timing hint about which prefix matched.
    if not any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
        raise Unauthorized("invalid API key", field="Authorization")
