"""Text the store can hold: PostgreSQL keeps neither NUL (U+0000) in text/JSONB nor lone UTF-16 surrogates.

Such text is refused at the edge (422 naming the field) rather than answered and then dropped by the store's
insert, where one bad row used to cost every verdict of its batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["UNSTORABLE_MESSAGE", "check_storable", "unstorable_path"]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

UNSTORABLE_MESSAGE = "contains a NUL character or a lone surrogate, which cannot be stored"


def unstorable_path(value: Any, path: str = "") -> str | None:
    """The path (``a.b[2]``) of the first string in ``value`` the store cannot hold, or None.

    Mapping keys are checked too (they become JSONB keys). Depth is bounded by the JSON parser already.
    """
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _UNSTORABLE.search(key):
                return where
            found = unstorable_path(item, where)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = unstorable_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def check_storable(value: Any, path: str = "") -> Any:
    """``value`` unchanged, or ValueError naming the first unstorable string (for pydantic validators)."""
    found = unstorable_path(value, path)
    if found is not None:
        raise ValueError(f"{found}: {UNSTORABLE_MESSAGE}" if found else UNSTORABLE_MESSAGE)
    return value
