"""Ground-truth label files read (for the app's comparison, evaluation and training), and
label images and masks written as PNG."""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from .config import ReadLimits
from .image_notes import connected_regions
from .imageio import ImageReadError, ImageSource, decode_array, source_bytes, source_name
from .png import png_bytes, write_png


JPEG_MAGIC = b"\xff\xd8\xff"


class GroundTruth(NamedTuple):
    labels: np.ndarray   # int32 instance labels, 0 = background
    from_mask: bool      # read from a binary mask (a JPEG's too): touching nuclei in it are one object


def read_labels(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits()) -> np.ndarray:
    """``read_ground_truth``'s labels."""
    return read_ground_truth(source, name, limits).labels


def read_ground_truth(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits()) -> GroundTruth:
    """A ground-truth file -> int32 instance labels (0 = background), and whether it was a mask.

    - a binary mask (background and one other value, in any bit depth) is split into
      connected components: touching nuclei count as one;
    - an image of ids (8/16-bit grey, 0 = background) keeps its ids, including one with no
      background at all ({1, 2}: two nuclei filling the field);
    - a colour label image (each nucleus its own colour) gets one id per colour, black the
      background;
    - a JPEG is lossy: its compression smears a mask's two levels into many, so a grey JPEG
      is binarised at half its range, and a colour JPEG, whose colours can't be trusted as
      ids, is refused with what to do instead.
    """
    name = source_name(source, name)
    data = source_bytes(source, name, limits)
    array = decode_array(data, name, limits)
    if array.ndim == 3:
        array = _label_plane(array, name, lossy=data[:3] == JPEG_MAGIC)
    if array.ndim != 2:
        raise ImageReadError(name, f"a label image must be 2-D, got shape {tuple(array.shape)}.")
    if data[:3] == JPEG_MAGIC:
        return GroundTruth(connected_regions(array > (int(array.min()) + int(array.max())) / 2), True)
    if np.issubdtype(array.dtype, np.floating):
        array = np.rint(np.nan_to_num(array))
    values = np.unique(array)
    if values.size == 2 and values[0] == 0 or array.dtype == bool:  # a binary mask
        return GroundTruth(connected_regions(array > 0), True)
    if values.size == 1 and values[0] == 0:
        return GroundTruth(np.zeros(array.shape, np.int32), False)
    if values.min() < 0 or values.max() > np.iinfo(np.int32).max:
        raise ImageReadError(name, f"label values from {values.min()} to {values.max()}: ids must be 0 (background) "
                                   "to 2^31. Save the labels as a 16-bit PNG or TIFF.")
    return GroundTruth(array.astype(np.int32), False)


def _label_plane(array: np.ndarray, name: str, lossy: bool) -> np.ndarray:
    """(H, W, C) ground truth -> (H, W): grey if its colour channels agree, else one id per colour."""
    colour = array[..., :3] if array.shape[-1] in (3, 4) else array[..., :1]
    if colour.shape[-1] == 1 or (np.all(colour[..., 0] == colour[..., 1]) and np.all(colour[..., 0] == colour[..., 2])):
        return colour[..., 0]
    if lossy:
        raise ImageReadError(name, "a colour JPEG can't hold a label image: its compression changes the colours that "
                                   "tell nuclei apart. Save the labels as PNG or TIFF (or a binary mask).")
    # One integer per colour (8/16-bit channels fit side by side in 64 bits): np.unique on
    # integers is many times faster than on rows.
    packed = sum(colour[..., c].astype(np.int64) << (16 * (2 - c)) for c in range(3))
    codes, ids = np.unique(packed, return_inverse=True)
    ids = ids.reshape(array.shape[:2]).astype(np.int32) + (0 if codes[0] == 0 else 1)
    return ids  # black (code 0, first when present) is the background


def write_labels_png(path: str | Path | BinaryIO, labels: np.ndarray) -> None:
    """16-bit PNG: 0 background, 1..N one id per nucleus (more than 65535 is refused)."""
    if labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"{labels.max()} nuclei do not fit a 16-bit label image.")
    write_png(path, labels.astype(np.uint16))


def labels_png_bytes(labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    write_labels_png(buffer, labels)
    return buffer.getvalue()


def mask_png_bytes(labels: np.ndarray) -> bytes:
    return png_bytes(((labels > 0) * 255).astype(np.uint8))
