"""Overlays of labels on images, as RGB arrays (PNG downloads, CLI output, app view)."""
from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

OUTLINE_COLOUR = np.array([1.0, 0.9, 0.0], np.float32)   # yellow reads well on grey, black and H&E
FILL_COLOUR = np.array([0.0, 1.0, 0.4], np.float32)
STYLES = ("outlines", "filled", "instances")


def label_colours(labels: np.ndarray, seed: int = 7) -> np.ndarray:
    """One stable, bright random colour per label id; background black."""
    rng = np.random.default_rng(seed)
    palette = rng.uniform(0.25, 1.0, size=(int(labels.max(initial=0)) + 1, 3)).astype(np.float32)
    palette[0] = 0.0
    return palette[labels]


def to_display(image: np.ndarray) -> np.ndarray:
    """Contrast-stretched float RGB for showing a (possibly dim, 16-bit) image."""
    low, high = np.percentile(image, (0.5, 99.5))
    return np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0).astype(np.float32)


def draw_overlay(image: np.ndarray, labels: np.ndarray, style: str = "outlines", opacity: float = 0.5) -> np.ndarray:
    """float RGB in [0, 1] with the nuclei drawn in ``style`` at ``opacity``."""
    if style not in STYLES:
        raise ValueError(f"unknown overlay style {style!r}; choose one of {', '.join(STYLES)}")
    base = to_display(image)
    if style == "outlines":
        edges = find_boundaries(labels, mode="inner")
        colour, where = OUTLINE_COLOUR, edges
    elif style == "filled":
        colour, where = FILL_COLOUR, labels > 0
    else:
        colour, where = label_colours(labels), labels > 0
    blended = base * (1.0 - opacity) + colour * opacity
    return np.where(where[..., None], blended, base).astype(np.float32)
