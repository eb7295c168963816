"""Ratings as arrays: axes × samples × raters with NaN where a rater did not score a sample.

100,000 samples × 5 raters × 13 axes take 26 MB as float32. Samples are then compressed per axis into
*profiles*, the distinct rows of scores a sample can have (at most 6**raters), so that every statistic
and every bootstrap resample is computed over profiles with weights instead of over samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from judge.agreement.ratings import RatingLike

LEVELS = 5


@dataclass(frozen=True)
class RatingMatrix:
    """``scores[axis, sample, rater]``: a rating, or NaN where there is none."""

    axes: tuple[str, ...]
    raters: tuple[str, ...]
    samples: tuple[str, ...]
    scores: NDArray[np.float32]
    # Rows left out: unknown axis or rater, a score that is not finite, or a later run of a rated cell.
    dropped: int = 0

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    def axis(self, key: str) -> NDArray[np.float32]:
        """samples × raters scores of one axis (a view)."""
        view: NDArray[np.float32] = self.scores[self.axes.index(key)]
        return view

    def categories(self) -> NDArray[np.int8]:
        """Scores as categories 1..5 (0 where missing); scores between levels are rounded half up."""
        cats = np.zeros(self.scores.shape, dtype=np.int8)
        present = ~np.isnan(self.scores)
        rounded = np.floor(self.scores[present] + 0.5)
        cats[present] = np.where((rounded >= 1) & (rounded <= LEVELS), rounded, 0).astype(np.int8)
        return cats

    @classmethod
    def from_columns(
        cls,
        sample_hash: Sequence[str],
        rater: Sequence[str],
        axis: Sequence[str],
        score: ArrayLike,
        run: ArrayLike | None = None,
        *,
        axes: Sequence[str],
        raters: Sequence[str] | None = None,
        only_run: int | None = None,
        sort_samples: bool = False,
    ) -> RatingMatrix:
        """Build from parallel columns; the lowest run of each (sample, rater, axis) wins unless ``only_run``.

        ``raters`` fixes the rater order and leaves others out; by default every rater appears, sorted.
        Samples keep the order they first appear in, or with ``sort_samples`` the order of their hashes (the
        bootstrap draws samples by position: a store read in no particular order still gives one report).
        """
        scores_in = np.asarray(score, dtype=np.float64)
        total = len(scores_in)
        runs = np.zeros(total, dtype=np.int64) if run is None else np.asarray(run, dtype=np.int64)
        rater_names = tuple(raters) if raters is not None else tuple(sorted(set(rater)))
        rater_code = {name: i for i, name in enumerate(rater_names)}
        axis_code = {name: i for i, name in enumerate(axes)}
        r_idx = np.fromiter((rater_code.get(r, -1) for r in rater), dtype=np.int64, count=total)
        a_idx = np.fromiter((axis_code.get(a, -1) for a in axis), dtype=np.int64, count=total)
        keep = (r_idx >= 0) & (a_idx >= 0) & np.isfinite(scores_in)
        if only_run is not None:
            keep &= runs == only_run
        kept = np.flatnonzero(keep)
        sample_code: dict[str, int] = {}
        # A Python dict factorises millions of hash strings faster than sorting them.
        s_idx = np.fromiter(
            (sample_code.setdefault(sample_hash[i], len(sample_code)) for i in kept.tolist()),
            dtype=np.int64,
            count=len(kept),
        )
        if sort_samples:
            # Sorting the distinct hashes (not the rows) costs little: then renumber the rows' codes.
            ranked = sorted(sample_code)
            rank = {h: i for i, h in enumerate(ranked)}
            renumber = np.fromiter((rank[h] for h in sample_code), dtype=np.int64, count=len(sample_code))
            s_idx = renumber[s_idx]
            sample_code = dict.fromkeys(ranked, 0)
        n_samples, n_raters = len(sample_code), len(rater_names)
        cell = (a_idx[kept] * n_samples + s_idx) * n_raters + r_idx[kept]
        order = np.lexsort((runs[kept], cell))
        first = np.ones(len(order), dtype=bool)
        first[1:] = cell[order][1:] != cell[order][:-1]
        chosen = order[first]
        matrix = np.full((len(axes), n_samples, n_raters), np.nan, dtype=np.float32)
        matrix.reshape(-1)[cell[chosen]] = scores_in[kept][chosen]
        return cls(
            axes=tuple(axes),
            raters=rater_names,
            samples=tuple(sample_code),
            scores=matrix,
            dropped=total - len(chosen),
        )

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[RatingLike],
        *,
        axes: Sequence[str],
        raters: Sequence[str] | None = None,
        only_run: int | None = None,
    ) -> RatingMatrix:
        """Build from rating rows (the store's rows, :class:`~judge.agreement.ratings.Rating`, dataclasses)."""
        items = rows if isinstance(rows, Sequence) else list(rows)
        return cls.from_columns(
            [r.sample_hash for r in items],
            [r.rater for r in items],
            [r.axis for r in items],
            np.fromiter((r.score for r in items), dtype=np.float64, count=len(items)),
            np.fromiter((r.run for r in items), dtype=np.int64, count=len(items)),
            axes=axes,
            raters=raters,
            only_run=only_run,
        )


@dataclass(frozen=True)
class Profiles:
    """Distinct rows of categories (0 missing, 1..5) and, for each sample, which row it has."""

    table: NDArray[np.int8]  # profiles × raters
    inverse: NDArray[np.int64]  # samples -> profile
    counts: NDArray[np.int64]  # samples per profile

    @property
    def size(self) -> int:
        return len(self.table)


def profiles(categories: NDArray[np.int8], levels: int = LEVELS) -> Profiles:
    """Compress samples × raters categories into distinct profiles."""
    n, r = categories.shape
    base = levels + 1
    if r * np.log2(base) < 62:
        code = categories.astype(np.int64) @ (base ** np.arange(r, dtype=np.int64))
        _, first, inverse, counts = np.unique(code, return_index=True, return_inverse=True, return_counts=True)
        table = categories[first]
    else:  # too many raters for one integer code
        table, inverse, counts = np.unique(categories, axis=0, return_inverse=True, return_counts=True)
    return Profiles(table=np.ascontiguousarray(table), inverse=inverse.reshape(-1), counts=counts)
