"""Image kinds (fluorescence, brightfield, H&E tissue) and how well the model does on each.

The same rule sorts the training images (for the split and the per-kind metrics) and a
user's image (for the app's honest-confidence note), so the score quoted for a kind is the
score on images the rule put in that kind.
"""
from __future__ import annotations

import math

import numpy as np

from .canvas import content_box, crop
from .channels import display_rgb
from .channelwise import channel_max, channel_mean, channel_min
from .sampling import side_stride

KINDS = ("fluorescence", "brightfield", "tissue")
KIND_NAMES = {"fluorescence": "fluorescence", "brightfield": "brightfield", "tissue": "stained tissue (H&E or similar)"}
# Below this validation mean AP a kind's results need checking by eye.
WEAK_MEAN_AP = 0.45
# An input's kind is decided on a strided sample at most this many px a side (the block-wise
# path's overview is no larger): a whole slide's kind needs no copy of the whole slide.
KIND_SAMPLE_SIDE = 2048


def image_kind(image: np.ndarray) -> str:
    """fluorescence (dark background), brightfield (light, grey) or tissue (light, stained),
    from the field of view, not a blank canvas around it."""
    image = image if image.ndim == 3 else image[..., None]
    image = crop(image, content_box(image))
    image = image / filled_range(image)
    if float(np.median(channel_mean(image))) < 0.5:
        return "fluorescence"
    colourfulness = float(np.mean(channel_max(image) - channel_min(image)))
    return "tissue" if colourfulness > 0.08 else "brightfield"


def filled_range(image: np.ndarray) -> float:
    """The part of [0, 1] the data can fill: the smallest power of two holding the brightest
    value. A 12-bit camera's image in a 16-bit file reads as [0, 1/16] (16-bit values map by
    the type's range), so its light background judged against 1 looked like fluorescence; 8-bit
    data in a 16-bit file likewise. On DSB2018's 664 training images (8-bit) it sorts every one
    as before: the dim ones' background stays below 0.18 of their filled range."""
    brightest = float(image.max(initial=0.0))
    return 1.0 if brightest <= 0.0 else min(1.0, 2.0 ** math.ceil(math.log2(brightest)))


def input_kind(channels: np.ndarray, channel: int | str) -> str:
    """``image_kind`` of an input (H, W[, C]) as the page shows it (``channels.display_rgb``:
    RGB as it is, another stack's nuclear channel), on a strided sample."""
    stride = side_stride(channels.shape, KIND_SAMPLE_SIDE)
    return image_kind(display_rgb(channels[::stride, ::stride], channel))


def kind_confidence(metrics: dict, kind: str) -> tuple[float | None, int, bool]:
    """(validation mean AP on this kind, number of validation images, weak?) from nuclei.json."""
    scores = metrics.get("validation", {}).get(kind)
    if not scores:
        return None, 0, True
    return float(scores["mean_ap"]), int(scores["images"]), float(scores["mean_ap"]) < WEAK_MEAN_AP


def kind_caution(metrics: dict, kind: str) -> str | None:
    """The CLI's note where the model is weak on this kind of image (the app shows
    ``kind_confidence`` on the page instead); None where it is not, or has no score for it."""
    mean_ap, images, weak = kind_confidence(metrics, kind)
    if mean_ap is None or not weak:
        return None
    return (f"looks like {KIND_NAMES[kind]}, on which the model's validation mean AP is only {mean_ap:.2f} "
            f"({images} images): expect missed or merged nuclei, and check the result by eye")
