"""What a job's output adds up to: outcomes, pass rate overall and per axis, score histograms, failing axes, rounds.

Built from output records one at a time (constant memory), mergeable (a worker merges each chunk's part into the
job's row), and stored as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LEVELS = ("1", "2", "3", "4", "5")


@dataclass
class AxisStats:
    histogram: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    passed: int = 0
    unscored: int = 0

    @property
    def scored(self) -> int:
        return sum(self.histogram.values())

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.scored if self.scored else None


@dataclass
class RoundStats:
    judged: int = 0
    passed: int = 0


@dataclass
class Summary:
    outcomes: dict[str, int] = field(default_factory=dict)
    axes: dict[str, AxisStats] = field(default_factory=dict)
    failing: dict[str, int] = field(default_factory=dict)
    # Curation: per round, how many drafts were judged and how many passed.
    rounds: dict[str, RoundStats] = field(default_factory=dict)
    # What judging (and, for curation, generating) cost: calls, prompt / cached / completion tokens, retries,
    # hedges, summed over records judged in this job (cache and store hits cost nothing).
    usage: dict[str, int] = field(default_factory=dict)
    generator_usage: dict[str, int] = field(default_factory=dict)

    @property
    def decided(self) -> int:
        return self.outcomes.get("kept", 0) + self.outcomes.get("dropped", 0)

    @property
    def pass_rate(self) -> float | None:
        """Kept over kept + dropped: items the judge could decide."""
        return self.outcomes.get("kept", 0) / self.decided if self.decided else None

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one output record (see judge.jobs.records)."""
        outcome = str(record.get("outcome"))
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        verdict = record.get("verdict")
        if isinstance(verdict, Mapping):
            failing = set(verdict.get("failing_axes") or ())
            for key, axis in (verdict.get("axes") or {}).items():
                stats = self.axes.setdefault(key, AxisStats())
                score = axis.get("score") if isinstance(axis, Mapping) else None
                if score is None:
                    stats.unscored += 1
                    continue
                stats.histogram[str(score)] = stats.histogram.get(str(score), 0) + 1
                if key not in failing:
                    stats.passed += 1
            for key in failing:
                self.failing[key] = self.failing.get(key, 0) + 1
        _add_counts(self.usage, record.get("usage"))
        _add_counts(self.generator_usage, record.get("generator_usage"))
        lineage = record.get("lineage")
        if isinstance(lineage, Mapping):
            for step in lineage.get("rounds") or ():
                stats_round = self.rounds.setdefault(str(step.get("round")), RoundStats())
                if step.get("passed") is not None:
                    stats_round.judged += 1
                    stats_round.passed += int(step.get("passed") is True)

    def merge(self, other: Summary) -> Summary:
        for key, n in other.outcomes.items():
            self.outcomes[key] = self.outcomes.get(key, 0) + n
        for key, theirs in other.axes.items():
            mine = self.axes.setdefault(key, AxisStats())
            for level, n in theirs.histogram.items():
                mine.histogram[level] = mine.histogram.get(level, 0) + n
            mine.passed += theirs.passed
            mine.unscored += theirs.unscored
        for key, n in other.failing.items():
            self.failing[key] = self.failing.get(key, 0) + n
        for key, theirs_round in other.rounds.items():
            mine_round = self.rounds.setdefault(key, RoundStats())
            mine_round.judged += theirs_round.judged
            mine_round.passed += theirs_round.passed
        _add_counts(self.usage, other.usage)
        _add_counts(self.generator_usage, other.generator_usage)
        return self

    def most_failing(self, n: int = 5) -> list[tuple[str, int]]:
        return sorted(self.failing.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def to_json(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "pass_rate": self.pass_rate,
            "axes": {
                key: {
                    "histogram": dict(stats.histogram),
                    "scored": stats.scored,
                    "passed": stats.passed,
                    "unscored": stats.unscored,
                    "pass_rate": stats.pass_rate,
                }
                for key, stats in self.axes.items()
            },
            "failing_axes": dict(self.most_failing(len(self.failing))),
            "rounds": {key: {"judged": r.judged, "passed": r.passed} for key, r in sorted(self.rounds.items())},
            "usage": dict(self.usage),
            "generator_usage": dict(self.generator_usage),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Summary:
        summary = cls()
        if not data:
            return summary
        summary.outcomes = {str(k): int(v) for k, v in (data.get("outcomes") or {}).items()}
        for key, axis in (data.get("axes") or {}).items():
            summary.axes[key] = AxisStats(
                histogram={str(k): int(v) for k, v in axis.get("histogram", {}).items()},
                passed=int(axis.get("passed", 0)),
                unscored=int(axis.get("unscored", 0)),
            )
        summary.failing = {str(k): int(v) for k, v in (data.get("failing_axes") or {}).items()}
        summary.rounds = {
            str(k): RoundStats(judged=int(v.get("judged", 0)), passed=int(v.get("passed", 0)))
            for k, v in (data.get("rounds") or {}).items()
        }
        _add_counts(summary.usage, data.get("usage"))
        _add_counts(summary.generator_usage, data.get("generator_usage"))
        return summary


def _add_counts(into: dict[str, int], counts: Any) -> None:
    """Add a record's usage counts (a mapping of name -> int; anything else is ignored) into ``into``."""
    if not isinstance(counts, Mapping):
        return
    for name, value in counts.items():
        if isinstance(value, int) and not isinstance(value, bool):
            into[str(name)] = into.get(str(name), 0) + value
