"""Does the diameter fit the image? A note where it looks wrong, never a change.

An estimated diameter is checked against the nuclei found at it (``pipeline``); one the user
gives is taken as told, which is right: it is how a user overrides a wrong estimate. But a
diameter in µm typed as pixels, or one left over from another magnification, wrecks the result without
a word (a user test: 22 px nuclei segmented at 66 px gave 1 nucleus of 22, at 7 px 22 objects
with 7 right). So the result is compared with what the image says. The network follows the
size it is told, so the nuclei found measure between the truth and the given size; the
network-free blob estimate doesn't, and is asked only when the nuclei found disagree.

An automatic diameter is noted where it falls below the smallest nuclei the model can be
run for: the model enlarges images at most ``MAX_FACTOR`` times, so its 16 px nuclei can be
4 px in the image, no smaller. A user test found such diameters on empty wells and noise-only
fields (2-3 px "nuclei", hundreds of them, with no word): after the percentile stretch, noise
has full contrast, and the network finds blobs in it at any scale.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .canvas import canvas_note
from .channels import channel_note
from .image_notes import quiet_field_note
from .kinds import weak_kind_note
from .pipeline import MAX_NETWORK_PIXELS, Segmentation, network_input
from .scale import (ESTIMATOR_BIAS, ESTIMATOR_DIAMETERS, MAX_FACTOR, MIN_FACTOR, equivalent_diameters,
                    estimate_diameter, scale_factor)
from .size_search import SEARCH_ABOVE
from .wording import plural

# Nuclei found within this factor of the given diameter: it fits, nothing more is computed.
# At right diameters the nuclei found measured 0.94-1.14x of it (fluorescence, H&E,
# brightfield); at diameters 3x off, 0.41-0.46x.
FITS_WITHIN = 1.25
# The given diameter is doubted where the nuclei found, or the blob estimate, measure more
# than this factor away from it: twice or half the nuclei's size is where results break.
DOUBT_BEYOND = 2.0
# Fewer nuclei than this measure nothing.
MIN_MEASURED = 3
# The estimator's answer where its response peaks at its smallest candidate size.
LOWEST_ESTIMATE = ESTIMATOR_DIAMETERS[0] / ESTIMATOR_BIAS * 1.001
# An image narrower than this many nucleus diameters is mostly edge: a user test segmented a
# 5000x20 strip into 45 objects without a word.
NARROW_DIAMETERS = 3.0
# What to do about it, on the command line (the app says it its own way).
CLI_ADVICE = "Give --diameter in pixels (or in µm with its unit: 8um), or leave it out to have it estimated"


# Where a whole image enlarged to its diameter would be too large for the network: the
# command line's way to segment it at full scale.
CLI_BLOCKS_ADVICE = "--block-size 2048 segments it block by block at the full scale"


def image_notes(model, channels: np.ndarray, segmentation: Segmentation, prepared: np.ndarray | None = None,
                advice: str = CLI_ADVICE, blocks_advice: str = CLI_BLOCKS_ADVICE, canvas: bool = True,
                caution: bool = True, asked_channel: int | str | None = None) -> list[str]:
    """``canvas.canvas_note`` (where ``canvas``: the app shows it as information, not as a
    warning), ``channels.channel_note``, ``image_notes.quiet_field_note``, a given diameter's
    doubt (``given_diameter_note``) or else ``capped_scale_note`` or else ``diameter_note``,
    ``narrow_image_note`` (of the field of view), and where ``caution``, ``kinds.weak_kind_note``
    (the app shows the kind's score on the page): those that apply (the app gives its own words
    for the advice). ``asked_channel``: the channel asked for (None: the one used), so that
    the channel note chooses a channel again only where one was asked for, not where the
    automatic choice already gave it."""
    prediction = segmentation.prediction
    field = prediction.field
    shape = segmentation.labels.shape if field is None else field.shape
    narrow = narrow_image_note(shape, prediction.diameter, prediction.diameter_source)
    # Shrunk below its diameter, the image's nuclei measure larger than the diameter: that is
    # the cap's doing, not a wrong diameter. But a diameter given far from the image's own
    # estimate is still wrong, and its note goes first: the cap's advice (the full scale, block
    # by block) would segment at the wrong size (a user test: 6 px given for 25 px nuclei on a
    # 2000x2000 image, 856 nuclei of 2885, and only the cap's note).
    capped = capped_scale_note(prediction, blocks_advice)
    given = prediction.diameter_source == "given"
    if capped and given:
        scale = given_diameter_note(model, channels, segmentation, prepared, advice, found_counts=False) or capped
    else:
        scale = capped or diameter_note(model, channels, segmentation, prepared, advice)
    weak_kind = caution and weak_kind_note(model.scores_for_new_images, prediction.kind, prediction.quiet,
                                           segmentation.count)
    colours = channel_note(channels, prediction.channel if asked_channel is None else asked_channel)
    return list(filter(None, [canvas and canvas_note(field, segmentation.labels.shape), colours,
                              quiet_field_note(prediction.quiet, segmentation.count, not given), scale, narrow,
                              weak_kind]))


def capped_scale_note(prediction, advice: str = CLI_BLOCKS_ADVICE) -> str | None:
    """A note where the image was segmented at a smaller scale than its diameter asks: enlarged
    to it, the whole image would exceed ``MAX_NETWORK_PIXELS`` (a user test: a 6000x6000
    field with --diameter 8 gave 3022 nuclei of some 16,000, and a note that 8 px looked
    wrong)."""
    if not prediction.diameter or not prediction.canonical_diameter:
        return None
    wanted = scale_factor(prediction.diameter, prediction.canonical_diameter)
    if prediction.factor >= wanted * 0.99:
        return None
    segmented_at = prediction.canonical_diameter / prediction.factor
    return (f"segmented as if its nuclei were {segmented_at:.0f} px across, not the {prediction.diameter:.1f} px "
            f"{prediction.diameter_source}: enlarged to that, the whole image would exceed the network's "
            f"{MAX_NETWORK_PIXELS / 1e6:.0f} megapixels, so small nuclei may be missed or merged; {advice}")


def narrow_image_note(shape: tuple[int, ...], diameter: float | None, source: str = "given") -> str | None:
    """A note where the image's short side is under ``NARROW_DIAMETERS`` nuclei across: most
    nuclei touch its edges, cut off, and count and measure as smaller whole ones. Or the
    diameter is wrong: an estimate is doubted too (a user test: 300 px bands of a brightfield
    field, estimated at 123 px against a true 18, were told their shape was the problem)."""
    height, width = shape[:2]
    short = min(height, width)
    if not diameter or short >= NARROW_DIAMETERS * diameter:
        return None
    side = "tall" if height <= width else "wide"
    note = (f"the image is only {short} px {side}, {short / diameter:.1f} nucleus diameters ({diameter:.1f} px "
            f"{source}): most nuclei are cut by its edges, so the count and the sizes are approximate")
    if source in ("estimated", "measured"):
        note += "; if its nuclei are smaller than that, the estimate is wrong: give the diameter"
    return note


def diameter_note(model, channels: np.ndarray, segmentation: Segmentation, prepared: np.ndarray | None = None,
                  advice: str = CLI_ADVICE) -> str | None:
    """What to tell the user about the diameter an image was segmented at, if anything:
    ``given_diameter_note`` where it was given, ``too_small_note`` where it was not."""
    prediction = segmentation.prediction
    if prediction.diameter_source == "given":
        return given_diameter_note(model, channels, segmentation, prepared, advice)
    return too_small_note(prediction.diameter, prediction.diameter_source, model.diameter)


def too_small_note(diameter: float | None, source: str, canonical: float | None) -> str | None:
    """A note where an automatic (estimated or measured) diameter is under the smallest the
    model can enlarge to its own (None where it is not, or the diameter was given)."""
    if source not in ("estimated", "measured") or not diameter or not canonical:
        return None
    smallest = canonical / MAX_FACTOR
    if diameter >= smallest:
        return None
    return (f"the objects found measure {diameter:.1f} px across, smaller than the {smallest:g} px nuclei this "
            "model can resolve: noise on an empty field, or nuclei too small at this magnification")


def given_diameter_note(model, channels: np.ndarray, segmentation: Segmentation,
                        prepared: np.ndarray | None = None, advice: str = CLI_ADVICE,
                        found_counts: bool = True) -> str | None:
    """``diameter_doubt`` of an image segmented at a diameter the user gave (None for the
    others); ``prepared``: the network's input (its field of view), where the caller still has it."""
    prediction = segmentation.prediction
    if prediction.diameter_source != "given":
        return None

    def blob_estimate() -> float:
        image = prepared if prepared is not None else network_input(model, channels, prediction.channel).field_image
        return estimate_diameter(image)
    return diameter_doubt(prediction.diameter, segmentation.labels, blob_estimate, advice, found_counts)


def diameter_doubt(given: float, labels: np.ndarray, blob_estimate: Callable[[], float],
                   advice: str = CLI_ADVICE, found_counts: bool = True) -> str | None:
    """What to tell the user where ``given`` px looks wrong for the image segmented into
    ``labels`` at it, else None. ``blob_estimate`` (``scale.estimate_diameter`` of the
    network's input) is called only where the nuclei found don't fit ``given``; it counts
    between its smallest answer and ``SEARCH_ABOVE``. ``found_counts`` False: the sizes of
    the nuclei found don't tell (segmented at another scale than given), the estimate alone does."""
    diameters = equivalent_diameters(labels)
    count = diameters.size
    measured = float(np.median(diameters)) if count >= MIN_MEASURED and found_counts else None
    if measured is not None and _within(measured, given, FITS_WITHIN):
        return None
    blob = blob_estimate()
    # At the estimator's smallest size it found no blob size at all (a blank or noise-only
    # field), not 5 px nuclei; above SEARCH_ABOVE it may be measuring whole cells.
    blob_counts = LOWEST_ESTIMATE < blob <= SEARCH_ABOVE
    if not ((measured is not None and not _within(measured, given, DOUBT_BEYOND))
            or (blob_counts and not _within(blob, given, DOUBT_BEYOND))):
        return None
    found = (f"the {count} nuclei found at it measure {measured:.0f} px" if measured is not None
             else f"{plural(count, 'nucleus', 'nuclei')} found{' at it' if found_counts else ''}")
    # "About": the automatic diameter measures the nuclei it finds after this quick estimate,
    # and may settle elsewhere (a user test: 25 px here, 28.8 px once automatic).
    seen = f", a quick estimate from the image says about {blob:.0f} px" if blob_counts else ""
    return f"the diameter given, {round(given, 1):g} px, looks wrong for this image: {found}{seen}. {advice}"


def _within(value: float, reference: float, factor: float) -> bool:
    return abs(math.log(value / reference)) <= math.log(factor)


def diameter_out_of_reach(diameter: float, canonical: float | None, asked: str | None = None) -> str | None:
    """What --diameter does when the image would be resized past the limits (``scale.py``);
    ``asked``: the value as given, where it was not in px."""
    if not canonical or MIN_FACTOR <= canonical / diameter <= MAX_FACTOR:
        return None
    nearest = canonical / MAX_FACTOR if canonical / diameter > MAX_FACTOR else canonical / MIN_FACTOR
    given = f"{asked} = {diameter:g} px" if asked else f"{diameter:g}"
    return (f"--diameter {given}: images are resized at most {MAX_FACTOR:g}x up and {1 / MIN_FACTOR:g}x down "
            f"(the model sees {canonical:g} px nuclei), so nuclei are treated as {nearest:g} px across")
