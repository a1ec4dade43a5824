"""Image kinds (fluorescence, brightfield, H&E tissue) and how well the model does on each.

The same rule sorts the training images (for the split and the per-kind metrics) and a
user's image (for the app's honest-confidence note), so the score quoted for a kind is the
score on images the rule put in that kind.
"""
from __future__ import annotations

import numpy as np

from .canvas import content_box, crop
from .channels import network_rgb
from .channelwise import channel_max, channel_mean, channel_min
from .inference import Stretch
from .sampling import percentile_sample, side_stride
from .wording import plural

KINDS = ("fluorescence", "brightfield", "tissue")
KIND_NAMES = {"fluorescence": "fluorescence", "brightfield": "brightfield", "tissue": "stained tissue (H&E or similar)"}
# Below this validation mean AP a kind's results need checking by eye.
WEAK_MEAN_AP = 0.45
# An input's kind is decided on a strided sample at most this many px a side (the block-wise
# path's overview is no larger): a whole slide's kind needs no copy of the whole slide.
KIND_SAMPLE_SIDE = 2048
# Cameras' bit depths (``filled_range``), the last the 16-bit file's own.
CAMERA_BITS = (8, 10, 12, 14, 16)


def image_kind(image: np.ndarray, light: bool | None = None) -> str:
    """fluorescence (dark background), brightfield (light, grey) or tissue (light, stained),
    from the field of view, not a blank canvas around it. ``light``: whether the network's
    input was inverted for a light background, where known; else decided here the same way.

    Light or dark is the stretch's decision (``inference.Stretch``), so the kind named is the
    one the network was given: judged on the camera's range instead, a 16-bit fluorescence
    field whose values all sit under 256 (a camera offset of 200, a dim stain) was judged on
    8 bits, its dark background at 0.8 of them, and every such image was cautioned as
    brightfield. On the 664 DSB2018 training images the two rules sort every image alike.
    Decided here, a flat field (no contrast, no background to judge) goes by its level."""
    image = image if image.ndim == 3 else image[..., None]
    image = crop(image, content_box(image))
    camera_range = filled_range(image)
    image = image if camera_range == 1.0 else image / camera_range
    if light is None:
        light = _looks_light(image)
    if not light:
        return "fluorescence"
    colourfulness = float(np.mean(channel_max(image) - channel_min(image)))
    return "tissue" if colourfulness > 0.08 else "brightfield"


def _looks_light(image: np.ndarray) -> bool:
    image = np.asarray(image, dtype=np.float32)
    sample = percentile_sample(image)
    if not sample.size or sample.min() == sample.max():
        return bool(sample.size) and float(np.median(channel_mean(sample))) >= 0.5
    return Stretch.fit(sample).invert


def filled_range(image: np.ndarray) -> float:
    """The camera's range within [0, 1]: 16-bit files map by the type's range, so a 12-bit
    camera's image reads as [0, 1/16], and its light background, judged against 1, looked like
    fluorescence. The range is the smallest of 8, 10, 12, 14 or 16 bits that holds the
    brightest value: a 12-bit image is judged on 12 bits, as an 8-bit one on 8 (an image
    exposed to under half its camera's range reads dark in either). 8-bit files that fill more
    than a quarter of their range (DSB2018's 664 training images: every one sorts as before,
    the dim ones' background below 0.18 of their range) are judged as they are."""
    brightest = float(image.max(initial=0.0)) if image.size else 0.0
    if not 0.0 < brightest <= 1.0:   # black, or not in [0, 1]: judged as it is
        return 1.0
    level = round(brightest * 65535)   # in the 16-bit file's units (float32 rounding undone)
    bits = next(bits for bits in CAMERA_BITS if level < 2 ** bits)
    return (2 ** bits - 1) / 65535


def network_light(stretch, normalisation) -> bool | None:
    """``image_kind``'s ``light`` from the network's stretch (``inference.Stretch``), where the
    model inverts light backgrounds; None (decided by ``image_kind`` itself) where it never
    does, or every image would be fluorescence."""
    return stretch.invert if normalisation.invert_light_background else None


def input_kind(channels: np.ndarray, channel: int | str, light: bool | None = None) -> str:
    """``image_kind`` of an input (H, W[, C]) as the network sees it (``channels.network_rgb``:
    the colours where all are used, else the channel segmented), on a strided sample;
    ``light``: the network's input was inverted (``image_kind``). (As the page shows it, a
    3-channel stack segmented on one channel was judged on its three stains as colours: H&E
    "tissue", where the same channel saved alone, or in a 2-channel stack, was not.)"""
    stride = side_stride(channels.shape, KIND_SAMPLE_SIDE)
    return image_kind(network_rgb(channels[::stride, ::stride], channel), light)


def kind_tells(quiet: bool, count: int) -> bool:
    """Whether an image's kind says anything about the result: not for a field of noise where
    nothing was found (``inference.Stretch.quiet``; its note says so), whose kind is the
    noise's (an empty RGB field with noise in each colour read as light, and was cautioned as
    tissue beside the empty-field note)."""
    return not (quiet and count == 0)


def kind_confidence(metrics: dict, kind: str) -> tuple[float | None, int, bool]:
    """(validation mean AP on this kind, number of validation images, weak?) from nuclei.json."""
    scores = metrics.get("validation", {}).get(kind)
    if not scores:
        return None, 0, True
    return float(scores["mean_ap"]), int(scores["images"]), float(scores["mean_ap"]) < WEAK_MEAN_AP


def kind_caution(metrics: dict, kind: str) -> str | None:
    """The CLI's note where the model is weak on this kind of image (the app shows
    ``kind_confidence`` on the page instead); None where it is not. A model scored on other
    kinds but never on this one (trained without it) gets a note as the page's; one with no
    scores at all (``info`` says so) does not, or every image would carry it."""
    mean_ap, images, weak = kind_confidence(metrics, kind)
    if mean_ap is None:
        return (f"looks like {KIND_NAMES[kind]}, on which the model has no validation score: check the result by eye"
                if metrics.get("validation") else None)
    if not weak:
        return None
    return (f"looks like {KIND_NAMES[kind]}, on which the model's validation mean AP is only {mean_ap:.2f} "
            f"({plural(images, 'image', 'images')}): expect missed or merged nuclei, and check the result by eye")


def weak_kind_note(metrics: dict, kind: str, quiet: bool, count: int) -> str | None:
    """``kind_caution`` where the kind means anything (``kind_tells``): the note the CLI's log, its
    summary.csv and the app's ZIP end an image's notes with."""
    return kind_caution(metrics, kind) if kind_tells(quiet, count) else None
