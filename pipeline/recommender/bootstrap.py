"""Paired bootstrap over users: how sure is a difference in mean quality between two rankers?

Both rankers are scored on the same users, so each resample draws users with replacement and
takes the mean of the *per-user differences*; the interval is the percentile interval of those
means. Pairing removes the between-user variance the two rankers share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DifferenceInterval:
    mean: float  # observed mean difference (candidate - reference)
    low: float
    high: float
    confidence: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "difference": round(self.mean, 6),
            "low": round(self.low, 6),
            "high": round(self.high, 6),
            "confidence": self.confidence,
            "excludes_zero": self.excludes_zero,
        }


def paired_bootstrap(
    candidate: np.ndarray, reference: np.ndarray, resamples: int, confidence: float, seed: int
) -> DifferenceInterval:
    """Percentile interval of mean(candidate - reference) over ``resamples`` resamples of the users."""
    differences = np.asarray(candidate, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    if differences.ndim != 1 or len(differences) == 0:
        raise ValueError("need one figure per user for both rankers")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[draws].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return DifferenceInterval(
        mean=float(differences.mean()), low=float(low), high=float(high), confidence=confidence
    )
