"""Image kinds (fluorescence, brightfield, H&E tissue) and how well the model does on each.

The same rule sorts the training images (for the split and the per-kind metrics) and a
user's image (for the app's honest-confidence note), so the score quoted for a kind is the
score on images the rule put in that kind.
"""
from __future__ import annotations

import numpy as np

from .canvas import content_box, crop
from .channelwise import channel_max, channel_mean, channel_min

KINDS = ("fluorescence", "brightfield", "tissue")
KIND_NAMES = {"fluorescence": "fluorescence", "brightfield": "brightfield", "tissue": "stained tissue (H&E or similar)"}
# Below this validation mean AP a kind's results need checking by eye.
WEAK_MEAN_AP = 0.45


def image_kind(image: np.ndarray) -> str:
    """fluorescence (dark background), brightfield (light, grey) or tissue (light, stained),
    from the field of view, not a blank canvas around it."""
    image = image if image.ndim == 3 else image[..., None]
    image = crop(image, content_box(image))
    if float(np.median(channel_mean(image))) < 0.5:
        return "fluorescence"
    colourfulness = float(np.mean(channel_max(image) - channel_min(image)))
    return "tissue" if colourfulness > 0.08 else "brightfield"


def kind_confidence(metrics: dict, kind: str) -> tuple[float | None, int, bool]:
    """(validation mean AP on this kind, number of validation images, weak?) from nuclei.json."""
    scores = metrics.get("validation", {}).get(kind)
    if not scores:
        return None, 0, True
    return float(scores["mean_ap"]), int(scores["images"]), float(scores["mean_ap"]) < WEAK_MEAN_AP
