"""Probabilities -> binary mask -> one label per nucleus.

Touching nuclei share one foreground blob; the boundary channel separates their interiors.
Each interior becomes a marker, and a watershed grows the markers back over the blob, so
every nucleus keeps its full extent and neighbours meet at the predicted boundary.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import relabel_sequential, watershed

from .config import PostprocessSettings


def foreground_mask(probabilities: np.ndarray, settings: PostprocessSettings) -> np.ndarray:
    return probabilities[..., 0] > settings.threshold


def marker_score(probabilities: np.ndarray) -> np.ndarray:
    """High inside a nucleus, low on its boundary and outside."""
    return np.clip(probabilities[..., 0] - probabilities[..., 1], 0.0, 1.0)


def instance_labels(probabilities: np.ndarray, settings: PostprocessSettings = PostprocessSettings()) -> np.ndarray:
    """int32 labels: 0 background, 1..N nuclei (sequential, objects < min_size dropped)."""
    _check_channels(probabilities)
    foreground = foreground_mask(probabilities, settings)
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    score = marker_score(probabilities)
    markers, _ = ndimage.label((score > settings.marker_threshold) & foreground)
    # Tiny specks of marker would each make a nucleus; a quarter of the minimum size is
    # enough to be a real interior.
    markers = remove_small(markers, settings.min_size // 4)
    labels = watershed(-score, markers, mask=foreground)
    labels = _add_unseeded_blobs(labels, foreground)
    labels = remove_small(labels, settings.min_size)
    return relabel_sequential(labels)[0].astype(np.int32)


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zeroes every label with fewer than ``min_size`` pixels."""
    if min_size <= 1 or labels.max(initial=0) == 0:
        return labels
    too_small = np.bincount(labels.ravel()) < min_size
    too_small[0] = False
    return np.where(too_small[labels], 0, labels)


def _check_channels(probabilities: np.ndarray) -> None:
    if probabilities.ndim != 3 or probabilities.shape[-1] < 2:
        raise ValueError(f"expected (H, W, 2) body + boundary probabilities, got shape {probabilities.shape}")


def _add_unseeded_blobs(labels: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Foreground blobs that got no marker (small, or all-boundary) are kept as nuclei."""
    orphans, count = ndimage.label(foreground & (labels == 0))
    if count:
        labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return labels


def binary_mask(labels: np.ndarray) -> np.ndarray:
    return labels > 0
