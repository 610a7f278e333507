"""Arrow <-> numpy conversions of the store's vector and box columns (no per-row Python)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def vectors_to_arrow(vectors: np.ndarray) -> pa.Array:
    """``(N, D)`` float32 as an Arrow ``fixed_size_list<float32, D>`` column (no per-row Python)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def fixed_list_to_numpy(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """A fixed-size-list column as a contiguous ``(N, width)`` numpy array (no per-row Python)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(-1, width)
