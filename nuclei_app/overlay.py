"""Overlays of labels on images, as RGB arrays (PNG downloads, CLI output, app view)."""
from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

OUTLINE_COLOUR = np.array([1.0, 0.9, 0.0], np.float32)   # yellow reads well on grey, black and H&E
FILL_COLOUR = np.array([0.0, 1.0, 0.4], np.float32)
STYLES = ("outlines", "filled", "instances")


def display_stride(shape: tuple[int, ...], max_side: int) -> int:
    """Subsampling step that brings the longer side to at most ``max_side`` for display."""
    return max(1, int(np.ceil(max(shape[:2]) / max_side)))


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


MATCH_COLOUR = np.array([0.1, 0.9, 0.2], np.float32)    # predicted and true, IoU > 0.5
FALSE_POSITIVE_COLOUR = np.array([1.0, 0.2, 0.2], np.float32)
MISSED_COLOUR = np.array([0.2, 0.5, 1.0], np.float32)


def comparison_overlay(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Outlines coloured by outcome at IoU 0.5: matched (green), false positive (red),
    missed ground-truth nucleus (blue)."""
    from .metrics import matched_ids

    true_hit, predicted_hit = matched_ids(truth, predicted, threshold=0.5)
    base = to_display(image)
    layers = (
        (find_boundaries(np.where(np.isin(predicted, predicted_hit), predicted, 0), mode="inner"), MATCH_COLOUR),
        (find_boundaries(np.where(np.isin(predicted, predicted_hit) | (predicted == 0), 0, predicted), mode="inner"), FALSE_POSITIVE_COLOUR),
        (find_boundaries(np.where(np.isin(truth, true_hit) | (truth == 0), 0, truth), mode="inner"), MISSED_COLOUR),
    )
    for where, colour in layers:
        base = np.where(where[..., None], colour, base)
    return base.astype(np.float32)


def probability_picture(probabilities: np.ndarray) -> np.ndarray:
    """Body probability in a perceptual colour map (dark = background)."""
    lut = _magma_lut()
    return lut[(np.clip(probabilities[..., 0], 0, 1) * 255).astype(np.uint8)]


def _magma_lut() -> np.ndarray:
    """256 colours interpolated from plotly's Magma anchors (plotly is already a dependency)."""
    from plotly.colors import hex_to_rgb, sequential

    anchors = np.array([hex_to_rgb(c) for c in sequential.Magma], np.float32) / 255.0
    positions = np.linspace(0, 1, len(anchors))
    grid = np.linspace(0, 1, 256)
    return np.stack([np.interp(grid, positions, anchors[:, c]) for c in range(3)], axis=-1).astype(np.float32)
