"""Nonparametric bootstrap over samples: seeded multiplicity matrices and percentile intervals.

A resample is drawn as indices, like any bootstrap, and handed on as counts (how often each sample was
drawn) so that statistics that are sums over samples become one matrix product for a whole block of
resamples.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray

# Index cells drawn per block: bounds the block's memory (about 24 bytes a cell) whatever n is.
_CELLS_PER_BLOCK = 10_000_000


def block_size(n: int, n_boot: int) -> int:
    return max(1, min(n_boot, _CELLS_PER_BLOCK // max(n, 1)))


def resample_counts(n: int, n_boot: int, seed: int, *, block: int | None = None) -> Iterator[NDArray[np.float32]]:
    """Yield ``n × b`` matrices of how often each of ``n`` samples is drawn, ``n_boot`` resamples in all.

    Each column is one resample of ``n`` draws with replacement; the same seed gives the same resamples.
    """
    rng = np.random.default_rng(seed)
    size = block or block_size(n, n_boot)
    done = 0
    while done < n_boot:
        b = min(size, n_boot - done)
        drawn = rng.integers(0, n, size=(b, n), dtype=np.int64)
        # Column j of the n × b result counts the draws of resample j: index sample * b + j.
        drawn *= b
        drawn += np.arange(b, dtype=np.int64)[:, None]
        counts = np.bincount(drawn.reshape(-1), minlength=n * b).reshape(n, b)
        yield counts.astype(np.float32)
        done += b


def percentile_ci(
    estimates: NDArray[np.floating], level: float = 0.95, *, min_valid: float = 0.5
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile interval over the first axis (resamples); NaN where fewer than ``min_valid`` are defined."""
    values = np.asarray(estimates, dtype=np.float64)
    tail = (1.0 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: handled below
        low, high = np.nanpercentile(values, [tail, 100 - tail], axis=0)
    valid = np.isfinite(values).mean(axis=0) >= min_valid
    return np.where(valid, low, np.nan), np.where(valid, high, np.nan)


def bootstrap(
    statistic: Callable[[NDArray[np.float32]], NDArray[np.float64]], n: int, n_boot: int, seed: int
) -> NDArray[np.float64]:
    """Evaluate ``statistic(counts)`` (counts: ``n × b``, result: ``b × …``) on every block; resamples first."""
    return np.concatenate([statistic(counts) for counts in resample_counts(n, n_boot, seed)], axis=0)
