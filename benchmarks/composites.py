"""Multi-channel test images built from a grey nuclear image with known truth.

A cytoplasm-like stain is grown around each nucleus (a ring of textured signal that also
covers the nucleus dimly), as phalloidin or a cell mask looks next to DAPI. Used by the
channel tests and ``python -m benchmarks.channels`` to check that the default channel choice
scores like the grey image does.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nuclei_app.scale import median_diameter


def cytoplasm_stain(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """(H, W) float in [0, 1]: cells about twice the nuclei's diameter, bright around them."""
    rng = np.random.default_rng(seed)
    diameter = median_diameter(labels) or 10.0
    cells = ndimage.grey_dilation(labels, size=max(3, int(diameter)) | 1) > 0
    texture = ndimage.gaussian_filter(rng.random(labels.shape), max(1.0, diameter / 8))
    texture = (texture - texture.min()) / max(float(np.ptp(texture)), 1e-6)
    stain = cells * (0.35 + 0.4 * texture) * np.where(labels > 0, 0.5, 1.0)
    stain = ndimage.gaussian_filter(stain, 1.0) + rng.normal(0.03, 0.01, labels.shape)
    return np.clip(stain, 0.0, 1.0).astype(np.float32)


def uneven_cytoplasm(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """``cytoplasm_stain`` with each cell's brightness drawn from a log-normal (sigma 0.8), as a
    transfected or variably expressed marker looks: a few cells bright, most dim."""
    rng = np.random.default_rng(seed + 7)
    diameter = median_diameter(labels) or 10.0
    owner = ndimage.grey_dilation(labels, size=max(3, int(diameter)) | 1)
    brightness = np.r_[0.0, rng.lognormal(0.0, 0.8, int(labels.max()))]
    return np.clip(cytoplasm_stain(labels, seed) * brightness[owner] / 2, 0.0, 1.0).astype(np.float32)


def rgb_composite(nuclei: np.ndarray, labels: np.ndarray, seed: int = 0, uneven: bool = False) -> np.ndarray:
    """Nuclei in blue, the cytoplasm stain in green (``uneven``: ``uneven_cytoplasm``), red
    empty: the usual DAPI + FITC overlay."""
    cytoplasm = uneven_cytoplasm(labels, seed) if uneven else cytoplasm_stain(labels, seed)
    return np.stack([np.zeros_like(nuclei), cytoplasm, nuclei], axis=-1).astype(np.float32)


def four_channel_stack(nuclei: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """(Y, X, 4) 16-bit-like floats: cytoplasm, a dim noisy channel, nuclei (channel 2), a membrane-ish one."""
    rng = np.random.default_rng(seed + 1)
    cytoplasm = cytoplasm_stain(labels, seed)
    noise = np.clip(rng.normal(0.05, 0.015, nuclei.shape), 0, 1)
    membrane = np.clip(ndimage.morphological_gradient(cytoplasm, size=3) * 2, 0, 1)
    return np.stack([cytoplasm, noise, nuclei, membrane], axis=-1).astype(np.float32)
