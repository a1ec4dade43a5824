"""Overlays of labels on images, as RGB arrays (PNG downloads, CLI output, app view)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .canvas import content_box, crop
from .sampling import percentile_sample

OUTLINE_COLOUR = np.array([1.0, 0.9, 0.0], np.float32)   # yellow: reads on grey and black
FILL_COLOUR = np.array([0.0, 1.0, 0.4], np.float32)
STYLES = ("outlines", "filled", "instances")
# An outline should stay about this many screen pixels wide however far the image is shrunk
# to fit the page: a 1 px line on a 1388 px image shown 600 px wide would vanish.
SCREEN_OUTLINE_PX = 2.0
# A strip (short side under 1/STRIP_ASPECT of its long one) is shown as a window on its start,
# STRIP_ASPECT short sides long, panned along in the interactive view: shown whole, a 5000x20
# strip was a line 3 px thick (a user test).
STRIP_ASPECT = 8
# The longest side the page ever sends a browser, strips included.
MAX_SENT_SIDE = 20_000


@dataclass(frozen=True)
class Palette:
    """Colours that stand out from the image's background, with their names for captions."""
    outline: tuple[float, float, float]
    match: tuple[float, float, float]
    false_positive: tuple[float, float, float]
    missed: tuple[float, float, float]
    names: tuple[str, str, str]  # match, false positive, missed


# Dark (fluorescence) backgrounds: yellow outlines. Missed nuclei in cyan, not blue: blue
# outlines vanished on the blue nuclei of a DAPI composite (a user test).
DARK_PALETTE = Palette((1.0, 0.9, 0.0), (0.1, 0.9, 0.2), (1.0, 0.2, 0.2), (0.0, 0.95, 1.0), ("green", "red", "cyan"))
# Light (brightfield, H&E) backgrounds: blue vanishes on purple tissue. Outlines in cyan:
# green, blended at the page's default opacity over purple H&E nuclei, came out a dark teal
# that hid them (a user test); cyan stays bright over purple nuclei and pale backgrounds.
# Missed nuclei in yellow (bright on the purple nuclei it outlines), not the outlines' cyan.
# Matched in a bright green: a darker one was the hardest to see on dark purple nuclei (a user test).
LIGHT_PALETTE = Palette((0.0, 0.95, 1.0), (0.3, 1.0, 0.3), (0.95, 0.0, 0.0), (1.0, 0.9, 0.0), ("green", "red", "yellow"))


# The display's contrast stretch and outline palette need the image's distribution, not
# every pixel: they are taken on a regular sample of at most this many pixels (every other
# pixel of a 512x512 field, which saves a third of drawing a CLI overlay).
DISPLAY_SAMPLE_PIXELS = 100_000


def display_sample(image: np.ndarray) -> np.ndarray:
    """The sample, of the field of view alone where the image is one on a blank canvas (a
    fluorescence field on white was shown dim, in the light backgrounds' palette)."""
    return percentile_sample(crop(image, content_box(image)), DISPLAY_SAMPLE_PIXELS)


def palette_for(image: np.ndarray) -> Palette:
    return palette_of_display(to_display(image))


def palette_over(image: np.ndarray, base: np.ndarray, stretch: bool) -> Palette:
    """``palette_for(image)``, from ``base = to_display(image, stretch)`` when that is already
    the stretched image (not stretched a second time)."""
    return palette_of_display(base) if stretch else palette_for(image)


def palette_of_display(displayed: np.ndarray) -> Palette:
    """``palette_for`` of the image already contrast-stretched by ``to_display``."""
    from .inference import is_light_background

    displayed = display_sample(displayed if displayed.ndim == 3 else displayed[..., None])
    light = is_light_background(displayed)
    return LIGHT_PALETTE if light else DARK_PALETTE


def shown_extent(shape: tuple[int, ...]) -> tuple[int, int]:
    """(height, width) of what the page shows of an image at first: all of it, or a strip's start."""
    height, width = shape[:2]
    return min(height, STRIP_ASPECT * width), min(width, STRIP_ASPECT * height)


def strip_start(labels: np.ndarray) -> int:
    """Where a strip's shown window begins along its length: a short side before its first
    nucleus, so that it opens on nuclei (a user test: a strip that began in background opened
    on black); 0 for an image that is no strip, or holds no nuclei."""
    height, width = labels.shape[:2]
    shown = shown_extent(labels.shape)
    if shown == (height, width):
        return 0
    lengthwise = labels.any(axis=1) if height > width else labels.any(axis=0)
    found = np.flatnonzero(lengthwise)
    if not found.size:
        return 0
    return int(min(max(0, found[0] - min(height, width)), max(height, width) - max(shown)))


def outline_width(shape: tuple[int, ...], display_side: int | None) -> int:
    """Outline width in image pixels so it is ~2 px on a screen showing ``display_side`` px
    (of the image's ``shown_extent``)."""
    if not display_side:
        return 1
    return max(1, int(round(SCREEN_OUTLINE_PX * max(shown_extent(shape)) / display_side)))


def outlines(labels: np.ndarray, width: int = 1) -> np.ndarray:
    """Inner boundaries of every nucleus, ``width`` pixels thick (never spilling outside it)."""
    edges = inner_boundaries(labels)
    if width > 1:
        edges = ndimage.binary_dilation(edges, iterations=width - 1) & (labels > 0)
    return edges


def inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """``skimage.segmentation.find_boundaries(labels, mode="inner")`` of 2-D labels, exactly:
    labelled pixels with a 4-neighbour of another value (the image's edge is no boundary).
    Four comparisons of shifted views instead of a grey dilation and erosion: 15x faster
    (0.3 vs 4.9 ms on 512x512), and drawn on every overlay the CLI writes."""
    labels = np.asarray(labels)
    edges = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        ahead, behind = [slice(None)] * 2, [slice(None)] * 2
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        differ = labels[tuple(ahead)] != labels[tuple(behind)]
        edges[tuple(ahead)] |= differ
        edges[tuple(behind)] |= differ
    return edges & (labels != 0)


def display_stride(shape: tuple[int, ...], max_side: int) -> int:
    """Subsampling step that brings the longer side to at most ``max_side`` for display."""
    return max(1, int(np.ceil(max(shape[:2]) / max_side)))


def view_stride(shape: tuple[int, ...], max_side: int) -> int:
    """``display_stride`` for a view that shows the ``shown_extent`` and pans along the rest:
    the shown part's longer side at most ``max_side``, the whole at most ``MAX_SENT_SIDE``."""
    return max(display_stride(shown_extent(shape), max_side), display_stride(shape, MAX_SENT_SIDE))


def label_colours(labels: np.ndarray, seed: int = 7) -> np.ndarray:
    """One stable, bright random colour per label id; background black."""
    rng = np.random.default_rng(seed)
    palette = rng.uniform(0.25, 1.0, size=(int(labels.max(initial=0)) + 1, 3)).astype(np.float32)
    palette[0] = 0.0
    return palette[labels]


def to_display(image: np.ndarray, stretch: bool = True) -> np.ndarray:
    """Float RGB for showing a (possibly dim, 16-bit) image: contrast-stretched between its
    0.5th and 99.5th percentiles, or (``stretch=False``) as stored."""
    if not stretch:
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    low, high = np.percentile(display_sample(image), (0.5, 99.5))
    return np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0).astype(np.float32)


def draw_overlay(image: np.ndarray, labels: np.ndarray, style: str = "outlines", opacity: float = 0.5,
                 display_side: int | None = None, stretch: bool = True) -> np.ndarray:
    """float RGB in [0, 1] with the nuclei drawn in ``style`` at ``opacity``. With
    ``display_side`` (the screen size it will be shown at) outlines are widened to stay
    visible; the outline colour follows the background (``palette_for``)."""
    if style not in STYLES:
        raise ValueError(f"unknown overlay style {style!r}; choose one of {', '.join(STYLES)}")
    base = to_display(image, stretch)
    if style == "outlines":
        colour = np.array(palette_over(image, base, stretch).outline, np.float32)
        where = outlines(labels, outline_width(labels.shape, display_side))
    elif style == "filled":
        colour, where = FILL_COLOUR, labels > 0
    else:
        colour, where = label_colours(labels), labels > 0
    # Blended where drawn only (outlines are a tenth of the pixels): base is a fresh array.
    if colour.ndim > 1:
        colour = colour[where]
    base[where] = base[where] * (1.0 - opacity) + colour * opacity
    return base


def comparison_overlay(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray,
                       display_side: int | None = None, stretch: bool = True) -> np.ndarray:
    """Outlines coloured by outcome at IoU 0.5: matched, false positive, missed ground-truth
    nucleus, in ``palette_for(image)``'s colours (its ``names`` say which for a caption)."""
    from .metrics import matched_ids

    true_hit, predicted_hit = matched_ids(truth, predicted, threshold=0.5)
    width = outline_width(truth.shape, display_side)
    base = to_display(image, stretch)
    palette = palette_over(image, base, stretch)
    matched = np.isin(predicted, predicted_hit)
    layers = (
        (outlines(np.where(matched, predicted, 0), width), palette.match),
        (outlines(np.where(matched | (predicted == 0), 0, predicted), width), palette.false_positive),
        (outlines(np.where(np.isin(truth, true_hit) | (truth == 0), 0, truth), width), palette.missed),
    )
    for where, colour in layers:
        base = np.where(where[..., None], np.array(colour, np.float32), base)
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
