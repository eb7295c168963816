"""A verdict's JSON forms, the stored axes and the cached verdict, from one serialiser pass over the axes.

The writer stores every verdict's axes (a JSON column) and caches every complete verdict whole. The axes are most of
both, and pydantic-core spends ~2 µs per axis on them, so they are serialised once, straight to bytes; the cached
verdict is the rest of it with those bytes set in place: byte for byte what ``TypeAdapter(Verdict).dump_json`` writes.
"""

from __future__ import annotations

from pydantic import TypeAdapter

from judge.verdicts import AxisResult, Verdict

_AXES: TypeAdapter[dict[str, AxisResult]] = TypeAdapter(dict[str, AxisResult])
_VERDICT: TypeAdapter[Verdict] = TypeAdapter(Verdict)
_WITHOUT_AXES = {"axes"}
# pydantic writes the fields in declaration order and ``axes`` comes right before ``usage``. Every field before
# ``usage`` is a string, whose JSON escapes its quotes, so the first ``,"usage":`` is that field's own key
# (tests/judge/test_verdict_json.py checks the order of the fields).
_USAGE_KEY = b',"usage":'
_AXES_KEY = b',"axes":'


def axes_json(verdict: Verdict) -> bytes:
    """The verdict's axes as JSON, as stored in the ``axes`` column (and found in the cached verdict)."""
    return _AXES.dump_json(verdict.axes)


def verdict_json(verdict: Verdict, axes: bytes | None = None) -> bytes:
    """The cache's form of a verdict; ``axes``: ``axes_json(verdict)`` when the caller has it already."""
    if axes is None:
        return _VERDICT.dump_json(verdict)
    rest = _VERDICT.dump_json(verdict, exclude=_WITHOUT_AXES)
    cut = rest.index(_USAGE_KEY)
    return b"".join((rest[:cut], _AXES_KEY, axes, rest[cut:]))
