"""Notes on what an image read holds, for the user: values that are NaN or infinite, and
images that are no micrograph (a blank field, a label image or a binary mask given as the
image to segment; those two looked for on a central crop, in a few milliseconds)."""
from __future__ import annotations

import numpy as np

from .scale import centre_corner


def content_notes(raw: np.ndarray) -> list[str]:
    """What the user should know about (H, W, C) pixels as read: values that are NaN or
    infinite, and an image that is no micrograph (one value, a label image, a binary mask)."""
    notes = [non_finite_note(raw)] if np.issubdtype(raw.dtype, np.floating) else []
    notes.append(flat_image_note(raw) or label_image_note(raw) or binary_mask_note(raw))
    return [note for note in notes if note]


def non_finite_note(raw: np.ndarray) -> str | None:
    """Float pixels that are NaN (a masked region, a failed stitch) or infinite are read as the
    image's darkest value and its extremes (``UnitScale.apply``): say how many."""
    bad = raw.size - int(np.count_nonzero(np.isfinite(raw)))
    if not bad:
        return None
    share = 100 * bad / raw.size
    return (f"{bad:,} values are NaN or infinite ({f'{share:.1f}' if share >= 0.1 else 'under 0.1'} %): NaN "
            "read as the image's darkest value, infinities as its extremes")


def flat_image_note(raw: np.ndarray) -> str | None:
    """A note where every pixel has the same value (a user test: a blank field gave "0 nuclei,
    diameter 5.2 px (estimated)", a size the estimator makes up when it finds none)."""
    if not raw.size or raw.min() != raw.max():
        return None
    low = raw.flat[0]
    return f"every pixel has the same value ({low:g}): there is nothing to segment, and the diameter is no measure"


def quiet_field_note(quiet: bool, count: int, automatic: bool) -> str | None:
    """A note where nothing was found in an image whose contrast hardly rises above its noise
    (``inference.Stretch.quiet``: a plate's empty well, an out-of-focus field, a channel without
    stain); ``automatic``: its diameter was not given. (A quiet field's one bright nucleus, too
    small a share of it to reach the stretch's percentile, is found, and not noted.)"""
    if not quiet or count:
        return None
    diameter = ", and an automatic diameter is no measure" if automatic else ""
    return (f"hardly any contrast above the image's noise (an empty field?): the noise is not taken for nuclei"
            f"{diameter}; very dim nuclei may be missed, check by eye")


# A label image (ids, each nucleus one flat region) given as the image to segment (a user
# test: a ground-truth mask segmented into "12 nuclei", status ok, no word). On the DSB2018
# training images (their first channel, 8-bit) at most 90 % of neighbouring pixels are equal
# and each value forms 60 to 960 connected regions; label images from their masks: 96-99.5 %
# and 1.0-1.07 regions per id.
LABELS_FLAT_SHARE = 0.9
LABELS_REGIONS_PER_ID = 2.0
LABELS_CHECK_SIDE = 1024  # a centre crop this large tells, at a few ms


def label_image_note(raw: np.ndarray) -> str | None:
    """A note where (H, W, C) pixels look like a label image: one integer channel, nearly all
    neighbours equal, about one connected region per non-zero value, at least 3 of them."""
    if raw.shape[-1] != 1 or not np.issubdtype(raw.dtype, np.integer):
        return None
    crop, where = _checked_window(raw)
    ids = label_like_ids(crop[..., 0])
    if ids is None or ids < 3:
        return None
    return (f"this looks like a label image ({ids} ids{where}, each one flat region), not a microscopy image: "
            "segment the image it labels")


def label_like_ids(plane: np.ndarray) -> int | None:
    """The number of ids of a (H, W) plane that reads as a label image (nearly all neighbours
    equal, about one connected region per non-zero value), else None."""
    pairs = plane[1:].size + plane[:, 1:].size
    equal = np.count_nonzero(plane[1:] == plane[:-1]) + np.count_nonzero(plane[:, 1:] == plane[:, :-1])
    if not pairs or equal < LABELS_FLAT_SHARE * pairs:
        return None
    ids = np.count_nonzero(np.unique(plane))
    regions = int(connected_regions(plane).max())  # one per flat region of a value, 0 left as background
    return ids if regions <= LABELS_REGIONS_PER_ID * max(ids, 1) else None


def micrograph_truth_note(labels: np.ndarray) -> str | None:
    """A note where a ground truth of ids (not a mask) does not read as a label image: the
    micrograph itself given as its truth (a user test: "True / found 8009 / 262", mean AP 0.000,
    and no word), or labels resized with interpolation."""
    crop, where = _checked_window(labels[..., None])
    if label_like_ids(crop[..., 0]) is not None:
        return None
    return (f"The ground truth does not look like a label image: its {np.count_nonzero(np.unique(crop)):,} values"
            f"{where} are not one flat region each, and every value is counted as one nucleus, so the scores mean "
            "nothing. Upload the nuclei's mask or label image (one id per nucleus, 0 for background), not the "
            "micrograph, and not one resized with smoothing.")


def _checked_window(raw: np.ndarray) -> tuple[np.ndarray, str]:
    """The part of an image the label and mask notes look at, and the words that say so."""
    top, left = centre_corner(raw.shape[:2], LABELS_CHECK_SIDE)
    crop = raw[top:top + LABELS_CHECK_SIDE, left:left + LABELS_CHECK_SIDE]
    return crop, "" if crop.shape[:2] == raw.shape[:2] else f" in its central {LABELS_CHECK_SIDE} px"


# A mask's objects are blobs: its rarer value's regions average at least this many pixels.
MASK_MIN_REGION = 9


def binary_mask_note(raw: np.ndarray) -> str | None:
    """A note where (H, W, C) pixels hold two values only, alike in every colour channel (an
    alpha channel aside): a binary mask (a user's thresholded nuclei, a DSB2018 mask file),
    which the network would segment as a micrograph. No 8- or 16-bit micrograph has so few
    levels: the 664 DSB2018 training images have 30 to 256 in their first channel."""
    if raw.shape[-1] not in (1, 3, 4) or not (np.issubdtype(raw.dtype, np.integer) or raw.dtype == bool):
        return None
    crop, where = _checked_window(raw)
    colours = crop[..., :3]
    if not (colours == colours[..., :1]).all():
        return None
    plane = colours[..., 0]
    # Two values are its extremes and nothing between: one pass, where np.unique sorted every
    # pixel of every image a batch reads (~10 ms of a 512x512 field's CPU, py-spy).
    if not plane.size:
        return None
    low, high = plane.min(), plane.max()
    if low == high or np.count_nonzero((plane != low) & (plane != high)):
        return None
    lows = np.count_nonzero(plane == low)
    minority = plane == (low if lows <= plane.size - lows else high)
    if min(lows, plane.size - lows) < MASK_MIN_REGION * connected_regions(minority).max():
        return None   # specks or a line on a flat field: no objects drawn
    return (f"this looks like a binary mask (only the values {low:g} and {high:g}{where}), not a "
            "microscopy image: segment the image it was made from")


def connected_regions(mask: np.ndarray) -> np.ndarray:
    """int32 ids of 4-connected regions: of a mask's True pixels, or of each value's flat
    areas in an integer image (0 stays background)."""
    from skimage.measure import label  # imported where needed: skimage takes a while to load

    return label(mask, connectivity=1).astype(np.int32)
