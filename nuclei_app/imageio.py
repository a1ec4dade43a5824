"""Reading any image a microscope (or a user) produces, and writing results.

Every reader returns float32 RGB in [0, 1] with shape (H, W, 3), whatever came in:
8/16/32-bit, float, greyscale, RGB, RGBA, multi-page TIFF (first page). Every failure is an
``ImageReadError`` whose message says which file and what is wrong, so callers can show it
as it is and carry on with the next file.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from .config import ReadLimits

ImageSource = Union[str, Path, bytes, BinaryIO]
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class ImageReadError(ValueError):
    """An input image could not be used; the message is meant for the user."""


def source_name(source: ImageSource, name: str | None = None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or "uploaded image"


def _read_bytes(source: ImageSource, name: str, limits: ReadLimits) -> bytes:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageReadError(f"{name}: file not found.")
        if path.stat().st_size > limits.max_file_bytes:
            raise ImageReadError(
                f"{name}: file is {path.stat().st_size / 2**20:.0f} MB, over the "
                f"{limits.max_file_bytes / 2**20:.0f} MB limit. Crop or downsample it first."
            )
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read(limits.max_file_bytes + 1)
    if len(data) == 0:
        raise ImageReadError(f"{name}: the file is empty.")
    if len(data) > limits.max_file_bytes:
        raise ImageReadError(f"{name}: file is over the {limits.max_file_bytes / 2**20:.0f} MB limit.")
    return data


def _check_pixels(shape: tuple[int, ...], name: str, limits: ReadLimits) -> None:
    height, width = shape[0], shape[1]
    if height * width > limits.max_pixels:
        raise ImageReadError(
            f"{name}: {width}x{height} pixels is over the limit of {limits.max_pixels / 1e6:.0f} "
            "megapixels. Crop or downsample the image first."
        )
    if height < 2 or width < 2:
        raise ImageReadError(f"{name}: image is only {width}x{height} pixels.")


MAX_CHANNELS = 8


def _decode_tiff(data: bytes, name: str, limits: ReadLimits) -> np.ndarray:
    """The first image of a TIFF: one page, or an ImageJ/OME channel stack (C, Y, X) read as
    (Y, X, C); other axes (Z, T) give their first plane. Sizes are checked from the header."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not tif.pages:
            raise ImageReadError(f"{name}: the TIFF file has no pages.")
        series = tif.series[0] if tif.series else None
        if series is not None and "C" in series.axes and "Y" in series.axes and "X" in series.axes:
            return _read_channel_series(series, name, limits)
        page = tif.pages.first
        shape = page.shape
        planar = len(shape) == 3 and shape[0] <= MAX_CHANNELS < min(shape[1:])
        _check_pixels(shape[1:] if planar else shape, name, limits)
        if len(shape) == 3 and not planar and shape[-1] > MAX_CHANNELS:
            # Checked from the header: 64 channels of 2000x2000 would decode to gigabytes.
            raise ImageReadError(f"{name}: unsupported image layout {tuple(shape)}; expected a 2-D image with "
                                 f"1 to {MAX_CHANNELS} channels.")
        array = page.asarray()
        if planar:
            array = np.moveaxis(array, 0, -1)
        elif array.ndim == 3 and array.shape[-1] == 4 and page.photometric == tifffile.PHOTOMETRIC.RGB:
            array = array[..., :3]  # RGBA: the alpha plane carries no image information
    return array


def _read_channel_series(series, name: str, limits: ReadLimits) -> np.ndarray:
    axes, shape = series.axes, dict(zip(series.axes, series.shape))
    _check_pixels((shape["Y"], shape["X"]), name, limits)
    if shape["C"] > MAX_CHANNELS:
        raise ImageReadError(f"{name}: {shape['C']} channels; at most {MAX_CHANNELS} are supported. "
                             "Save the nuclear channel, or a few channels, as their own file.")
    if series.size > limits.max_pixels * MAX_CHANNELS:
        # Z or T planes beyond the first would all be decoded: refuse from the header.
        raise ImageReadError(f"{name}: the stack {dict(shape)} holds {series.size / 1e6:.0f} million values, "
                             "too many to read here. Save the plane you want (one Z, one time point) as its own file.")
    array = series.asarray()
    # First plane of every axis that is not Y, X or C (Z, T, ...), then (Y, X, C).
    index = tuple(slice(None) if axis in "YXC" else 0 for axis in axes)
    kept = [axis for axis in axes if axis in "YXC"]
    return np.transpose(array[index], [kept.index(axis) for axis in "YXC"])


def _decode_pillow(data: bytes, name: str, limits: ReadLimits) -> np.ndarray:
    with warnings.catch_warnings():
        # Pillow warns, then raises, past MAX_IMAGE_PIXELS; we check the size ourselves
        # from the header, before any pixel is decoded.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            _check_pixels((image.height, image.width), name, limits)
            image.seek(0)
            if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1", "RGBA", "RGBa", "RGBX"):
                # Alpha (and transparency) carries no image information.
                image = image.convert("RGB")
            elif image.mode == "LA":
                image = image.convert("L")
            elif image.mode.startswith("I;16"):
                return np.asarray(image, dtype=np.uint16)
            return np.asarray(image)


def _to_unit_float(array: np.ndarray, name: str) -> np.ndarray:
    """Integer types map by their full range (so 16-bit keeps its meaning); floats by min-max."""
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        if info.min < 0:
            array = array.astype(np.float64) - info.min
        return (array / float(info.max - info.min)).astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(array.min()), float(array.max())
        if 0.0 <= low and high <= 1.0:
            return array
        return (array - low) / (high - low) if high > low else np.zeros_like(array)
    raise ImageReadError(f"{name}: unsupported pixel type {array.dtype}.")


def _to_channels(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W, C) with 1 to 8 channels."""
    if array.ndim == 2:
        return array[..., None]
    if array.ndim == 3 and 1 <= array.shape[-1] <= MAX_CHANNELS:
        return array
    raise ImageReadError(
        f"{name}: unsupported image layout {tuple(array.shape)}; expected a 2-D image with "
        f"1 to {MAX_CHANNELS} channels (save a single plane of a Z-stack or time series)."
    )


def _to_rgb(channels: np.ndarray) -> np.ndarray:
    if channels.shape[-1] >= 3:
        return channels[..., :3]
    return np.repeat(channels[..., :1], 3, axis=-1)  # grey (and grey + alpha)


def decode_array(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits()) -> np.ndarray:
    """The image's pixels as stored (any dtype, any channels), for images and label files."""
    name = source_name(source, name)
    data = _read_bytes(source, name, limits)
    try:
        if data[:4] in TIFF_MAGIC:
            array = _decode_tiff(data, name, limits)
        else:
            array = _decode_pillow(data, name, limits)
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        # Pillow's own guard fires in Image.open, before our header check: same answer.
        raise ImageReadError(
            f"{name}: the header declares more than {limits.max_pixels / 1e6:.0f} megapixels (a decompression "
            "bomb, or an image too large to process here). Crop or downsample the image first."
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{name}: not a readable image. Supported formats: PNG, JPEG, TIFF, BMP."
        ) from None
    except (OSError, ValueError, SyntaxError, IndexError, KeyError, MemoryError) as error:
        # Pillow and tifffile report truncated or corrupt data with these types.
        raise ImageReadError(f"{name}: the file is damaged or truncated ({error}).") from None
    if array.size == 0:
        raise ImageReadError(f"{name}: the image has no pixels.")
    return array


def read_image(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits()) -> np.ndarray:
    """Any supported image -> float32 RGB in [0, 1], shape (H, W, 3)."""
    return np.ascontiguousarray(_to_rgb(read_channels(source, name, limits)))


def read_channels(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits()) -> np.ndarray:
    """Any supported image -> float32 (H, W, C) in [0, 1] with all its channels (1 to 8):
    grey, RGB, or a fluorescence stack, for the nuclear channel to be chosen from."""
    name = source_name(source, name)
    array = decode_array(source, name, limits)
    channels = _to_channels(_to_unit_float(array, name), name)
    return np.ascontiguousarray(channels, dtype=np.float32)


def read_labels(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits()) -> np.ndarray:
    """A ground-truth file -> int32 instance labels. A binary mask is split into connected
    components; an image that already holds ids (16-bit label PNG) keeps them."""
    from skimage.measure import label as connected_components

    name = source_name(source, name)
    array = decode_array(source, name, limits)
    if array.ndim == 3:
        array = array[..., :3].max(axis=-1) if array.shape[-1] in (3, 4) else array[..., 0]
    if array.ndim != 2:
        raise ImageReadError(f"{name}: a label image must be 2-D, got shape {tuple(array.shape)}.")
    if np.issubdtype(array.dtype, np.floating):
        array = np.rint(array)
    values = np.unique(array)
    if values.size <= 2:  # binary mask: one label per connected blob
        return connected_components(array > values.min(), connectivity=1).astype(np.int32) if values.size == 2 else np.zeros(array.shape, np.int32)
    return array.astype(np.int32)


def write_labels_png(path: str | Path | BinaryIO, labels: np.ndarray) -> None:
    """16-bit PNG: 0 background, 1..N one id per nucleus (more than 65535 is refused)."""
    if labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"{labels.max()} nuclei do not fit a 16-bit label image.")
    Image.fromarray(labels.astype(np.uint16)).save(path, format="PNG")


def labels_png_bytes(labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    write_labels_png(buffer, labels)
    return buffer.getvalue()


def rgb_png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_png_bytes(labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
