"""Probabilities -> binary mask -> one label per nucleus.

Touching nuclei share one foreground blob; the boundary channel separates their interiors.
Each interior becomes a marker, and a watershed grows the markers back over the blob, so
every nucleus keeps its full extent and neighbours meet at the predicted boundary.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import remove_small_objects
from skimage.segmentation import relabel_sequential, watershed

from .config import PostprocessSettings


def foreground_mask(probabilities: np.ndarray, settings: PostprocessSettings) -> np.ndarray:
    return probabilities[..., 0] > settings.threshold


def marker_score(probabilities: np.ndarray) -> np.ndarray:
    """High inside a nucleus, low on its boundary and outside."""
    if probabilities.shape[-1] < 2:
        # A body-only model: distance to the background stands in for the boundary channel.
        body = probabilities[..., 0]
        distance = ndimage.distance_transform_edt(body > 0.5)
        return body * np.clip(distance / 3.0, 0.0, 1.0)
    return np.clip(probabilities[..., 0] - probabilities[..., 1], 0.0, 1.0)


def instance_labels(probabilities: np.ndarray, settings: PostprocessSettings = PostprocessSettings()) -> np.ndarray:
    """int32 labels: 0 background, 1..N nuclei (sequential, objects < min_size dropped)."""
    foreground = foreground_mask(probabilities, settings)
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    score = marker_score(probabilities)
    markers, _ = ndimage.label((score > settings.marker_threshold) & foreground)
    # Tiny specks of marker would each make a nucleus; a quarter of the minimum size is
    # enough to be a real interior.
    if settings.min_size >= 8:
        markers = remove_small_objects(markers, max_size=settings.min_size // 4 - 1)
    labels = watershed(-score, markers, mask=foreground)
    labels = _add_unseeded_blobs(labels, foreground)
    if settings.min_size > 1:
        labels = remove_small_objects(labels, max_size=settings.min_size - 1)
    return relabel_sequential(labels)[0].astype(np.int32)


def _add_unseeded_blobs(labels: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Foreground blobs that got no marker (small, or all-boundary) are kept as nuclei."""
    orphans, count = ndimage.label(foreground & (labels == 0))
    if count:
        labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return labels


def binary_mask(labels: np.ndarray) -> np.ndarray:
    return labels > 0
