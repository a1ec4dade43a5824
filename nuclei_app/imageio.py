"""Reading any image a microscope (or a user) produces, and the 8-bit RGB of results
(``to_uint8``, ``rgb_png_bytes``).

Every reader returns float32 RGB in [0, 1] with shape (H, W, 3), whatever came in:
8/16/32-bit, float (NaN and infinities included), greyscale, RGB, RGBA, palette, CMYK,
multi-page TIFF and animated GIF or WebP (first page or frame). Every failure is an
``ImageReadError`` whose message says which file and what is wrong, so callers can show it
as it is and carry on with the next file. What the pixels hold that the user should know
(NaN values, a blank field, a mask given as the image) is noted by ``image_notes``; ground-truth
label files are read by ``label_files``.
"""
from __future__ import annotations

import io
import itertools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Union

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from .config import ReadLimits
from .image_notes import content_notes
from .planes import OTHER_PLANES, PlaneRequest, no_stack_note, read_planes, resolve
from .png import png_bytes

ImageSource = Union[str, Path, bytes, BinaryIO]
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
SUPPORTED_FORMATS = "PNG, JPEG, TIFF, BMP, GIF, WebP"
# Nuclei a few pixels across need an image of about this size for the network to find them;
# smaller images (down to ReadLimits.min_side) are segmented, but rarely hold a nucleus.
USEFUL_SIDE = 16


class ImageReadError(ValueError):
    """An input image could not be used; the message is meant for the user.

    ``str(error)`` is "NAME: PROBLEM"; ``error.problem`` alone is for callers that already
    show the file's name (so that it is not said twice). ``ImageReadError(message)`` with
    one argument also works: then ``name`` is None and ``problem`` the whole message."""

    def __init__(self, name: str, problem: str | None = None):
        super().__init__(name if problem is None else f"{name}: {problem}")
        self.name, self.problem = (None, name) if problem is None else (name, problem)

    def __reduce__(self):  # pickling (multiprocessing, caches) rebuilds it from its parts
        return type(self), (self.problem,) if self.name is None else (self.name, self.problem)


def source_name(source: ImageSource, name: str | None = None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or "uploaded image"


def source_bytes(source: ImageSource, name: str, limits: ReadLimits) -> bytes:
    if isinstance(source, (str, Path)):
        data = _read_file(Path(source), name, limits)
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read(limits.max_file_bytes + 1)
    if len(data) == 0:
        raise ImageReadError(name, "the file is empty.")
    if len(data) > limits.max_file_bytes:
        raise ImageReadError(name, f"file is over the {limits.max_file_bytes / 2**20:.0f} MB limit.")
    return data


def _read_file(path: Path, name: str, limits: ReadLimits) -> bytes:
    if path.is_symlink() and not path.exists():
        raise ImageReadError(name, f"broken symbolic link to {os.readlink(path)}: the file it points to does not "
                                   "exist. Fix or remove the link.")
    if path.is_dir():
        raise ImageReadError(name, "is a folder, not an image file.")
    if not path.is_file():
        raise ImageReadError(name, "file not found.")
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise ImageReadError(name, f"file is {size / 2**20:.0f} MB, over the {limits.max_file_bytes / 2**20:.0f} "
                                       "MB limit. Crop or downsample it first.")
        return path.read_bytes()
    except OSError as error:  # permissions, a disk or network share that went away
        raise ImageReadError(name, f"the file could not be read ({error.strerror or error}).") from None


def _check_pixels(height: int, width: int, name: str, limits: ReadLimits) -> None:
    """Refuses, from the header, images too large to decode here or too small to segment."""
    if height * width > limits.max_pixels:
        raise ImageReadError(
            name, f"the image is {width}x{height} pixels, over the limit of {limits.max_pixels / 1e6:.0f} megapixels "
                  "(a decompression bomb, or an image too large to process here). Crop or downsample the image first."
        )
    if min(height, width) < limits.min_side:
        side = limits.min_side
        raise ImageReadError(
            name, f"the image is only {width}x{height} pixels; at least {side}x{side} are needed (better "
                  f"{USEFUL_SIDE}x{USEFUL_SIDE} or more: a nucleus is several pixels across). Check that this is "
                  "the image you meant."
        )


MAX_CHANNELS = 8
ALPHA_SAMPLES = (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA)


def _decode_tiff(data: bytes, name: str, limits: ReadLimits, notes: list[str],
                 plane: PlaneRequest = PlaneRequest()) -> np.ndarray:
    """The first image of a TIFF: one page, or an ImageJ/OME channel stack (C, Y, X) read as
    (Y, X, C); a Z-stack gives the plane ``plane`` chooses (``planes``), other axes (T, ...)
    their first plane. Sizes are checked from the header."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not tif.pages:
            # A header and then garbage (a trial's corrupt.tif): the first page is not there.
            raise ImageReadError(name, "a TIFF header but no image after it: the file is damaged or truncated (an "
                                       "interrupted copy or download?). Copy or export it again.")
        series = tif.series[0] if tif.series else None
        z_planes = _z_planes(series) if series is not None else 1
        if z_planes <= 1:
            notes += filter(None, [no_stack_note(plane)])
        chosen = plane.z is not None and z_planes > 1
        pages = _plane_pages(series) if chosen else None
        if pages:
            return _read_stack_planes(series, pages, name, limits, notes, plane)
        if series is not None and "C" in series.axes and "Y" in series.axes and "X" in series.axes:
            return _read_channel_series(series, name, limits, notes, plane=plane)
        if chosen:  # pages that are not one plane each: the whole series, within the size check
            return _read_channel_series(series, name, limits, notes, axes=series.axes.replace("S", "C"), plane=plane)
        if series is not None and rows_as_pages(series):
            notes.append(rows_as_pages_note(series.shape[-1]))
            return _read_channel_series(series, name, limits, notes, axes="YXC")
        if series is not None and unnamed_channel_stack(series):
            notes.append(unnamed_channels_note(series.shape[0]))
            return _read_channel_series(series, name, limits, notes, axes="C" + series.axes[1:])
        if series is not None:
            note_planes(dict(zip(series.axes, series.shape)), notes)
        return _read_first_page(tif.pages.first, name, limits)


def unnamed_channel_stack(series) -> bool:
    """A plain multi-page stack (tifffile's 'QYX': pages of one size, no axes metadata) with 2
    to 8 pages is a channel stack, as fluorescence cameras save them; more pages are more
    likely a Z-stack or time series, read at their first plane. (A tifffile series or level.)"""
    return series.axes in ("QYX", "IYX") and 2 <= series.shape[0] <= MAX_CHANNELS


def rows_as_pages(series) -> bool:
    """A (Y, X, C) image of 2 or 5-8 channels saved one row per page: tifffile (and
    scikit-image's imsave, which calls it) writes such an array as Y pages of X by C pixels,
    a plain 'QYX' stack whose pages are only 2-8 px wide (a trial: read as 520 planes of
    696x2, its first segmented, "0 nuclei", status ok)."""
    return (series.axes in ("QYX", "IYX") and 2 <= series.shape[-1] <= MAX_CHANNELS
            and min(series.shape[:2]) > MAX_CHANNELS)


def rows_as_pages_note(count: int) -> str:
    return (f"pages {count} px wide, one per row: read as an image of {count} channels, (Y, X, C), as tifffile and "
            "scikit-image save such an array")


def unnamed_channels_note(count: int) -> str:
    """The guess is told: a Z-stack saved without axes reads as channels."""
    return (f"{count} pages and no axes in the file: read as {count} channels (save a Z-stack or time series with "
            "its axes, by ImageJ or as OME-TIFF, to choose its Z plane)")


def _read_first_page(page, name: str, limits: ReadLimits) -> np.ndarray:
    """One page as (H, W) or (H, W, C): planar samples moved last, alpha dropped, CMYK as RGB."""
    _check_pixels(page.imagelength, page.imagewidth, name, limits)
    if page.samplesperpixel > MAX_CHANNELS:
        # Checked from the header: 64 channels of 2000x2000 would decode to gigabytes.
        raise ImageReadError(name, f"unsupported image layout {tuple(page.shape)}; expected a 2-D image with "
                                   f"1 to {MAX_CHANNELS} channels.")
    array = page.asarray()
    if page.samplesperpixel > 1 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3:
        array = _without_alpha(array, page)
        cmyk = page.tags.valueof(332, 1) == 1  # InkSet: 1 (the default) is CMYK
        if page.photometric == tifffile.PHOTOMETRIC.SEPARATED and array.shape[-1] == 4 and cmyk:
            array = _cmyk_to_rgb(array)
    return array


def alpha_sample_count(page, samples: int) -> int:
    """How many of a page's ``samples`` per pixel its header calls alpha (0 if that would be all)."""
    alpha = sum(1 for sample in page.extrasamples if sample in ALPHA_SAMPLES)
    if alpha == 0 and page.photometric == tifffile.PHOTOMETRIC.RGB and samples == 4:
        alpha = 1  # RGBA written without the ExtraSamples tag
    return alpha if 0 < alpha < samples else 0


def _without_alpha(array: np.ndarray, page) -> np.ndarray:
    """Alpha (transparency) carries no image information: an RGBA or grey + alpha TIFF is RGB or
    grey. But only a constant extra sample is taken for alpha: tifffile (and others) tag the
    4th channel of any (Y, X, 4) array as alpha, and a 16-bit 4-channel fluorescence stack
    saved that way must keep its 4th channel."""
    alpha = alpha_sample_count(page, array.shape[-1])
    if not alpha:
        return array
    extra = array[..., array.shape[-1] - alpha:]
    if array.dtype == np.uint8 or np.all(extra == extra.flat[0]):
        return array[..., : array.shape[-1] - alpha]
    return array


def _cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """Ink amounts -> float32 RGB in [0, 1]: light is what the inks and the black leave through."""
    ink = unit_scale_of(cmyk).apply(cmyk)
    return ((1.0 - ink[..., :3]) * (1.0 - ink[..., 3:4])).astype(np.float32)


def _read_channel_series(series, name: str, limits: ReadLimits, notes: list[str], axes: str | None = None,
                         plane: PlaneRequest = PlaneRequest()) -> np.ndarray:
    """A series -> (Y, X, C) (C of 1 where it has none): the Z plane ``plane`` chooses, the
    first of every other axis."""
    axes = axes or series.axes
    shape = dict(zip(axes, series.shape))
    _check_plane(shape, name, limits)
    if series.size > limits.max_pixels * MAX_CHANNELS:
        # Z or T planes beyond the first would all be decoded: refuse from the header.
        raise ImageReadError(name, f"the stack {dict(shape)} holds {series.size / 1e6:.0f} million values, too many "
                                   "to read here. Save the plane you want (one Z, one time point) as its own file.")
    array = series.asarray()
    chosen = plane.z is not None and shape.get("Z", 1) > 1
    # First plane of every axis that is not Y, X or C (T, ...; Z too unless one is chosen).
    index = tuple(slice(None) if axis in "YXC" or (axis == "Z" and chosen) else 0 for axis in axes)
    kept = [axis for axis in axes if axis in "YXC" or (axis == "Z" and chosen)]
    array = array[index]
    if "C" not in kept:
        array, kept = array[..., None], kept + ["C"]
    array = np.transpose(array, [kept.index(axis) for axis in ("ZYXC" if chosen else "YXC")])
    if "S" in series.axes and "C" not in series.axes:  # samples read as channels: alpha is none
        array = _without_alpha(array, series.keyframe)
    if not chosen:
        note_planes(shape, notes)
        return array
    return _chosen_planes(lambda z: array[z], shape, name, notes, plane)


def _check_plane(shape: dict[str, int], name: str, limits: ReadLimits) -> None:
    """One plane of a stack (axes -> lengths) within the limits, from the header."""
    _check_pixels(shape["Y"], shape["X"], name, limits)
    if shape.get("C", 1) > MAX_CHANNELS:
        raise ImageReadError(name, f"{shape['C']} channels; at most {MAX_CHANNELS} are supported. "
                                   "Save the nuclear channel, or a few channels, as their own file.")


def _z_planes(series) -> int:
    return int(dict(zip(series.axes, series.shape)).get("Z", 1))


def _plane_pages(series) -> Callable[[int], list[int]] | None:
    """The pages that hold Z plane z (its channels; the first of other axes), where each page
    is one (Y, X) or (Y, X, samples) plane, as ImageJ and OME-TIFF stacks store them; None
    for another layout (read whole instead)."""
    if series is None:
        return None
    page_axes, axes = series.keyframe.axes, series.axes
    lead_axes, lead_shape = axes[: len(axes) - len(page_axes)], tuple(series.shape[: len(axes) - len(page_axes)])
    if page_axes not in ("YX", "YXS") or not axes.endswith(page_axes) or "Z" not in lead_axes:
        return None
    if len(series.pages) != math.prod(lead_shape) or ("C" in lead_axes and page_axes == "YXS"):
        return None

    def pages(z: int) -> list[int]:
        ranges = [range(n) if axis == "C" else [z] if axis == "Z" else [0] for axis, n in zip(lead_axes, lead_shape)]
        return [int(np.ravel_multi_index(index, lead_shape)) for index in itertools.product(*ranges)]
    return pages


def _read_stack_planes(series, pages: Callable[[int], list[int]], name: str, limits: ReadLimits, notes: list[str],
                       plane: PlaneRequest) -> np.ndarray:
    """A Z-stack read plane by plane, each plane's ``pages`` only (``_plane_pages``): a plane
    by number decodes that plane, the sharpest and the projection one plane at a time, so a
    stack needs no more memory (nor passes a size check) than one of its planes."""
    shape = dict(zip(series.axes, series.shape))
    _check_plane(shape, name, limits)

    def read_plane(z: int) -> np.ndarray:
        array = series.asarray(key=pages(z))
        if "C" in shape:
            return np.moveaxis(array, 0, -1) if array.ndim == 3 else array[..., None]
        return _without_alpha(array, series.keyframe) if array.ndim == 3 else array[..., None]
    return _chosen_planes(read_plane, shape, name, notes, plane)


def _chosen_planes(read_plane, shape: dict[str, int], name: str, notes: list[str], plane: PlaneRequest) -> np.ndarray:
    """The (Y, X, C) plane ``plane`` chooses of a Z-stack read by ``read_plane``, with its notes."""
    try:
        indices, note = resolve(plane, shape["Z"], read_plane)
    except ValueError as error:
        raise ImageReadError(name, str(error)) from None
    note_planes(shape, notes, note)
    return read_planes(read_plane, indices)


AXIS_NAMES = {"Z": "Z planes", "T": "time points", "Q": "planes", "I": "planes", "R": "tiles"}


def note_planes(shape: dict[str, int], notes: list[str], z_note: str | None = None) -> None:
    """Which planes of a stack were read: ``z_note``, the Z plane chosen (``planes.resolve``),
    and the first of every other axis (time points, ...; of Z too where none was chosen)."""
    if z_note:
        notes.append(z_note)
    planes = {axis: length for axis, length in shape.items()
              if axis not in ("YXCSZ" if z_note else "YXCS") and length > 1}
    if planes:
        stack = " x ".join(f"{length} {AXIS_NAMES.get(axis, axis + ' planes')}" for axis, length in planes.items())
        other = OTHER_PLANES if "Z" in planes else "save the plane you want as its own file to segment another"
        notes.append(f"a stack of {stack}: the first is segmented; {other}")


# Pillow modes read as RGB, and as grey: alpha and transparency carry no image information.
PILLOW_AS_RGB = ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBA", "RGBa", "RGBX")
PILLOW_AS_GREY = ("1", "LA", "La")


def _decode_pillow(data: bytes, name: str, limits: ReadLimits, notes: list[str]) -> np.ndarray:
    """The first frame of any format Pillow knows (GIF and WebP animations included)."""
    with warnings.catch_warnings():
        # Pillow warns past MAX_IMAGE_PIXELS (we check the size ourselves, from the header,
        # before any pixel is decoded) and about palette transparency (which is dropped).
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as image:
            _check_pixels(image.height, image.width, name, limits)
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                notes.append(f"{frames} frames: the first is segmented")
            image.seek(0)
            if _is_16bit_colour_png(image):
                notes.append("a 16-bit colour PNG, read at 8 bits (a 16-bit TIFF keeps every bit)")
                grey = image.mode in PILLOW_AS_GREY
                return _check_high_bytes(np.asarray(image.convert("L" if grey else "RGB")), name)
            if image.mode in PILLOW_AS_RGB:
                image = image.convert("RGB")
            elif image.mode in PILLOW_AS_GREY:
                image = image.convert("L")
            elif image.mode.startswith("I;16"):
                return np.asarray(image, dtype=np.uint16)
            return np.asarray(image)


def _is_16bit_colour_png(image) -> bool:
    """A 16-bit colour (or grey + alpha) PNG: Pillow decodes it at 8 bits, the high byte of each value."""
    return (image.format == "PNG" and bool(image.tile)
            and str(image.tile[0].args).startswith(("RGB;16", "RGBA;16", "LA;16")))


# Read at 8 bits (high bytes), a 16-bit PNG whose values all lie below 32 * 256 = 8192 (13-bit
# data or fewer: 12-bit cameras give 16 levels) keeps too few grey levels for its nuclei.
MIN_HIGH_BYTE = 32


def _check_high_bytes(pixels: np.ndarray, name: str) -> np.ndarray:
    """``pixels``, Pillow's 8-bit reading of a 16-bit colour PNG, where that kept the image;
    refused where every value lived in the low bits."""
    if int(pixels.max(initial=0)) < MIN_HIGH_BYTE:
        levels = int(np.count_nonzero(np.bincount(pixels.ravel(), minlength=256)))
        raise ImageReadError(name, f"a 16-bit colour PNG whose values all lie below {MIN_HIGH_BYTE * 256} (13-bit "
                                   f"data or fewer): read at 8 bits (all this reader can do with colour PNGs) it "
                                   f"keeps {levels} grey levels. Save it as a 16-bit TIFF (Fiji: File > Save As > "
                                   "Tiff...), or as one 16-bit greyscale PNG per channel.")
    return pixels


def unit_scale_of(array: np.ndarray, name: str = "image") -> UnitScale:
    """8- and 16-bit integers map by their type's full range (a dim 16-bit image stays dim, as
    recorded); wider integers and floats by their own min-max, since their range means nothing."""
    scale = UnitScale.for_dtype(array.dtype)
    if scale is None and (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        scale = UnitScale.fit(array)
    if scale is None:
        raise ImageReadError(name, f"unsupported pixel type {array.dtype}.")
    return scale


@dataclass(frozen=True)
class UnitScale:
    """The pixel values' map to [0, 1], for a whole image: 8- and 16-bit integers by their
    type's range ("type"), other types by the image's finite min-max ("minmax"), floats
    already in [0, 1] as they are ("identity"). One rule for an image read whole here and for
    a huge one read block by block (``block_sources.TiffSource``, which scans its range first)."""
    low: float
    high: float
    kind: str = "type"

    @classmethod
    def for_dtype(cls, dtype: np.dtype) -> UnitScale | None:
        """The scale of types whose range is known; None where the image must be scanned."""
        if dtype == bool:
            return cls(0.0, 1.0)
        if np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            return cls(float(info.min), float(info.max))
        return None

    @classmethod
    def fit(cls, array: np.ndarray) -> UnitScale:
        """From the image's finite values (NaN counts as the minimum and infinities as the
        finite extremes when applied); an image without finite values is black."""
        finite = array[np.isfinite(array)] if np.issubdtype(array.dtype, np.floating) else array
        if not finite.size:
            return cls(0.0, 0.0, "minmax")
        return cls.for_range(array.dtype, float(finite.min()), float(finite.max()))

    @classmethod
    def for_range(cls, dtype: np.dtype, low: float, high: float) -> UnitScale:
        identity = np.issubdtype(dtype, np.floating) and 0.0 <= low and high <= 1.0
        return cls(low, high, "identity" if identity else "minmax")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if self.kind == "type":
            return ((raw.astype(np.float32) - self.low) / (self.high - self.low)).astype(np.float32)
        values = raw.astype(np.float64 if raw.dtype.itemsize > 4 else np.float32)
        if np.issubdtype(raw.dtype, np.floating):
            values = np.nan_to_num(values, copy=False, nan=self.low, posinf=self.high, neginf=self.low)
        if self.kind == "identity":
            return values.astype(np.float32, copy=False)
        if self.high == self.low:  # a constant image
            return np.zeros(values.shape, np.float32)
        values /= 2  # halved first: high - low of +-1e308 would overflow
        values -= self.low / 2
        values /= self.high / 2 - self.low / 2
        return np.clip(values, 0.0, 1.0).astype(np.float32, copy=False)


def _to_channels(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W, C) with 1 to 8 channels."""
    if array.ndim == 2:
        return array[..., None]
    if array.ndim == 3 and 1 <= array.shape[-1] <= MAX_CHANNELS:
        return array
    raise ImageReadError(
        name, f"unsupported image layout {tuple(array.shape)}; expected a 2-D image with "
              f"1 to {MAX_CHANNELS} channels (save a single plane of a Z-stack or time series)."
    )


def _to_rgb(channels: np.ndarray) -> np.ndarray:
    if channels.shape[-1] >= 3:
        return channels[..., :3]
    return np.repeat(channels[..., :1], 3, axis=-1)  # grey (and grey + alpha)


def decode_array(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits(),
                 notes: list[str] | None = None, plane: PlaneRequest = PlaneRequest()) -> np.ndarray:
    """The image's pixels as stored (any dtype, any channels), for images and label files.
    ``notes``: gets a line for what the user should know about how it was read (the first
    plane of a Z-stack, the first frame of an animation, ...); ``plane``: a Z-stack's plane."""
    notes = [] if notes is None else notes
    name = source_name(source, name)
    data = source_bytes(source, name, limits)
    try:
        if data[:4] in TIFF_MAGIC:
            array = _decode_tiff(data, name, limits, notes, plane)
        else:
            array = _decode_pillow(data, name, limits, notes)
            notes += filter(None, [no_stack_note(plane)])
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        # Pillow's own guard fires in Image.open, before our header check: same answer.
        raise ImageReadError(
            name, f"the header declares more than {limits.max_pixels / 1e6:.0f} megapixels (a decompression bomb, "
                  "or an image too large to process here). Crop or downsample the image first."
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(name, f"not a readable image. Supported formats: {SUPPORTED_FORMATS}.") from None
    except MemoryError:
        raise ImageReadError(name, "not enough memory to decode the image. Crop or downsample it, or close "
                                   "other programs.") from None
    except Exception as error:  # noqa: BLE001
        # Decoders report damaged data with an open-ended set of types (OSError, SyntaxError,
        # zlib.error, struct.error, ...): only the file's bytes were handled here, so it is the file.
        raise ImageReadError(name, f"the file is damaged or truncated ({_describe(error)}): copy, download or "
                                   "export it again.") from None
    if array.size == 0:
        raise ImageReadError(name, "the image has no pixels.")
    return array


def _describe(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def tiff_plane_shape(level) -> tuple[int, int]:
    """(height, width) of one plane of a tifffile series level."""
    axes, shape = level.axes, level.shape
    if rows_as_pages(level):
        return shape[0], shape[1]
    if "Y" not in axes or "X" not in axes:
        page = level.keyframe
        return page.imagelength, page.imagewidth
    return shape[axes.index("Y")], shape[axes.index("X")]


def declared_layout(data: bytes) -> tuple[int | None, int]:
    """(pixels of the image's full-resolution plane, its Z planes), from its header alone (no
    pixel is decoded, the header parsed once); (None, 1) where the header can't be read, so
    that the reader says why."""
    try:
        if data[:4] in TIFF_MAGIC:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                height, width = tiff_plane_shape(tif.series[0].levels[0])
                return int(height) * int(width), _z_planes(tif.series[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.width * image.height, 1
    except Exception:  # noqa: BLE001 - any failure here (a Pillow bomb too) is reported by the reader
        return None, 1


def read_image(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits()) -> np.ndarray:
    """Any supported image -> float32 RGB in [0, 1], shape (H, W, 3)."""
    return np.ascontiguousarray(_to_rgb(read_channels(source, name, limits)))


def read_channels(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits(),
                  notes: list[str] | None = None, plane: PlaneRequest = PlaneRequest()) -> np.ndarray:
    """Any supported image -> float32 (H, W, C) in [0, 1] with all its channels (1 to 8):
    grey, RGB, or a fluorescence stack, for the nuclear channel to be chosen from; a
    Z-stack's plane as ``plane`` chooses (``planes``)."""
    raw, scale = read_raw_channels(source, name, limits, notes, plane)
    return np.ascontiguousarray(scale.apply(raw), dtype=np.float32)


def read_raw_channels(source: ImageSource, name: str | None = None, limits: ReadLimits = ReadLimits(),
                      notes: list[str] | None = None,
                      plane: PlaneRequest = PlaneRequest()) -> tuple[np.ndarray, UnitScale]:
    """``read_channels`` in two halves: the (H, W, C) pixels as stored, and their map to [0, 1].
    A large image kept as stored (8-bit: a quarter of its float32 size) is converted a block
    at a time (``block_sources.ArraySource``)."""
    name = source_name(source, name)
    raw = grey_if_copies(_to_channels(decode_array(source, name, limits, notes, plane), name))
    if notes is not None:
        notes += content_notes(raw)
    return raw, unit_scale_of(raw, name)


def grey_if_copies(raw: np.ndarray) -> np.ndarray:
    """A colour image whose three channels are one grey, copied (a grey image exported as RGB,
    a grey GIF's palette): its one channel, as a grey file reads. Not three identical channels
    to pick from and three identical intensity columns per nucleus (an app trial)."""
    if raw.shape[-1] == 3 and np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 1], raw[..., 2]):
        return np.ascontiguousarray(raw[..., :1])   # a copy: the three-channel buffer is freed
    return raw


def rgb_png_bytes(rgb: np.ndarray) -> bytes:
    return png_bytes(to_uint8(rgb))


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
