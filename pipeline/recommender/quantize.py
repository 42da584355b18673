"""Row-wise symmetric int8 quantization of the item table.

Each item row gets its own scale = max|row| / 127, values = round(row / scale) in [-127, 127].
Dequantization is ``values * scale``; the error of every element is at most scale / 2 (half a
quantization step). An all-zero row gets scale 1 and values 0 (exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT8_LEVELS = 127


@dataclass(frozen=True)
class QuantizedTable:
    values: np.ndarray  # int8 [n, dim]
    scales: np.ndarray  # float32 [n]

    def dequantize(self) -> np.ndarray:
        return self.values.astype(np.float32) * self.scales[:, None]

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + self.scales.nbytes


def quantize_rows(table: np.ndarray) -> QuantizedTable:
    table = np.asarray(table, dtype=np.float32)
    max_abs = np.abs(table).max(axis=1)
    scales = np.where(max_abs > 0, max_abs / INT8_LEVELS, 1.0).astype(np.float32)
    values = np.clip(np.rint(table / scales[:, None]), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)
    return QuantizedTable(values=values, scales=scales)


def memory_report(table: np.ndarray, quantized: QuantizedTable) -> dict[str, float | int]:
    return {
        "item_table_fp32_bytes": int(np.asarray(table, dtype=np.float32).nbytes),
        "item_table_int8_bytes": int(quantized.values.nbytes),
        "item_scales_bytes": int(quantized.scales.nbytes),
        "item_table_int8_with_scales_bytes": quantized.nbytes,
        "compression_ratio": round(np.asarray(table, dtype=np.float32).nbytes / quantized.nbytes, 3),
    }
