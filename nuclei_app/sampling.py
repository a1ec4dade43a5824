"""Regular subsamples of an image: the pixels whole-image decisions are made on.

The whole-image route takes them from the image in memory, ``blocks`` gathers the same
pixels in one pass over a huge image, so both routes decide on exactly the same values.
"""
from __future__ import annotations

import numpy as np

PERCENTILE_SAMPLE_PIXELS = 2_000_000


def percentile_stride(height: int, width: int, max_pixels: int = PERCENTILE_SAMPLE_PIXELS) -> int:
    """All pixels up to 2 Mpx (every training image); a regular subsample beyond, where an
    exact percentile over tens of millions of values costs more than it tells."""
    return max(1, int(np.ceil(np.sqrt(height * width / max_pixels))))


def percentile_sample(image: np.ndarray, max_pixels: int = PERCENTILE_SAMPLE_PIXELS) -> np.ndarray:
    stride = percentile_stride(image.shape[0], image.shape[1], max_pixels)
    return image[::stride, ::stride] if stride > 1 else image


def side_stride(shape: tuple[int, ...], max_side: int) -> int:
    """The stride that brings the longest side of an image of ``shape`` to at most ``max_side``."""
    return max(1, -(-max(shape[:2]) // max_side))
