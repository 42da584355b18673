"""Synthetic catalogues for the scaling section: the real catalogue, extended by perturbed copies (pure).

Rows ``0 .. n_real - 1`` of a catalogue of ``n_items`` are the real items unchanged; every
further row ``j`` is real row ``j mod n_real`` plus Gaussian noise of ``noise`` times that
dimension's standard deviation over the real rows (for the product index, re-normalised to unit
length, as the real index is). The scores of such items are spread like real ones, so
the cost of scoring and top-k is realistic; their *rankings* mean nothing, and every figure made
with them is labelled synthetic. A catalogue no larger than the real one is its first rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_NOISE = 0.1


@dataclass(frozen=True)
class CatalogueLabel:
    items: int
    real_items: int
    synthetic_items: int

    @property
    def synthetic(self) -> bool:
        return self.synthetic_items > 0

    def __str__(self) -> str:
        if not self.synthetic:
            return f"{self.items:,} items (real)"
        return f"{self.items:,} items ({self.real_items:,} real + {self.synthetic_items:,} synthetic)"


def label(n_items: int, n_real: int) -> CatalogueLabel:
    real = min(n_items, n_real)
    return CatalogueLabel(items=n_items, real_items=real, synthetic_items=n_items - real)


def extend_rows(
    real: np.ndarray, n_items: int, seed: int, noise: float = DEFAULT_NOISE, unit_rows: bool = False
) -> np.ndarray:
    """``[n_items, ...]`` float32 rows: the real rows, then perturbed copies (see the module doc).
    ``real`` may be 1-d (e.g. item biases: one value per item)."""
    if n_items < 1:
        raise ValueError(f"a catalogue needs at least one item, got {n_items}")
    real = np.asarray(real, dtype=np.float32)
    n_real = real.shape[0]
    if n_items <= n_real:
        return real[:n_items].copy()
    rng = np.random.default_rng(seed)
    extra = n_items - n_real
    sources = np.arange(extra) % n_real
    scale = real.std(axis=0, dtype=np.float64).astype(np.float32) * np.float32(noise)
    copies = real[sources] + rng.standard_normal((extra, *real.shape[1:]), dtype=np.float32) * scale
    if unit_rows:
        copies /= np.maximum(np.linalg.norm(copies, axis=-1, keepdims=True), np.float32(1e-12))
    return np.concatenate([real, copies])
