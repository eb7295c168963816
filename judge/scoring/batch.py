"""What the Scorer hands back: one ScoredItem per input sample, in a ScoreBatch with the usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judge.samples import Sample
from judge.verdicts import Usage, Verdict


@dataclass(slots=True)
class ScoredItem:
    """The result for one input sample. ``verdict`` is None only when the deadline passed first."""

    sample: Sample
    key: str
    _verdict: Verdict | None
    cached: bool
    # Where a cached verdict came from: "cache" or "store"; None when judged now or timed out.
    source: str | None = None
    # A cache hit as decoded JSON. Rendering reads it as is; the typed Verdict is built only on first use
    # (validating 13 axes per hit was a third of a cached RL batch's time).
    raw: dict[str, Any] | None = None

    @classmethod
    def hit(cls, sample: Sample, key: str, found: Verdict | dict[str, Any], source: str) -> ScoredItem:
        if isinstance(found, Verdict):
            return cls(sample, key, found, cached=True, source=source)
        return cls(sample, key, None, cached=True, source=source, raw=found)

    @property
    def verdict(self) -> Verdict | None:
        if self._verdict is None and self.raw is not None:
            self._verdict = Verdict.model_validate(self.raw)
        return self._verdict

    @property
    def timed_out(self) -> bool:
        return self._verdict is None and self.raw is None


@dataclass(frozen=True, slots=True)
class ScoreBatch:
    items: list[ScoredItem]
    usage: Usage
    # Verdicts answered in this batch that the store has not taken yet (held for a retry: judge/writer.py).
    pending_writes: int = 0

    @property
    def cached(self) -> int:
        return sum(1 for i in self.items if i.cached)
