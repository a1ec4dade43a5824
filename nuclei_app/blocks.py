"""Huge images, block by block: read lazily, segment overlapping blocks, stitch the labels.

An image above the in-memory limit (``ReadLimits``) is never held whole: its TIFF is read
window by window (tifffile's zarr store for tiled or stripped data, explicit reads for
uncompressed contiguous data), and the labels go to a raw file on disk written and read
window by window. Memory is bounded by the block size, not the image size.

Stitching follows StarDist's ``predict_instances_big``. The image is cut into *cores* that
tile it without overlap; each block segments its core plus a *margin* of context on every
side, and keeps the objects whose centroid lies in its core. The margin is wider than any
nucleus, so a kept nucleus is whole in the block that keeps it and a nucleus that crosses
a core border is one object with one id. Objects that touch a block's context edge (not
the image's edge) are cut; they belong to a neighbour (their centroid is outside the
core), except objects larger than the margin, which are kept cut and counted
(``BlockResult.oversized``).

Two blocks may see a nucleus on their border slightly differently (the network sees other
context), moving its centroid across the border: with a strict rule both blocks would
keep it, or neither. So each block keeps the objects whose centroid lies within a small
tolerance of its core, and the first version written wins: a later object more than half
on already-labelled pixels is the same nucleus again and is dropped (counted in
``duplicates``); a smaller overlap leaves it its unlabelled pixels.

Whatever the pipeline decides from the whole image is decided once, for every block alike:
the nuclear channel, the intensity stretch (percentiles of the same strided sample that
``inference.preprocess`` takes), the light-background inversion and the nucleus diameter.
Each block then computes its part of the whole image's network input exactly (same
sample points, same pooling phase: ``NetworkGrid``), so that away from its edges a block's
probabilities are the whole image's, and block-wise labels match whole-image labels
(matched IoU 0.999 on synthetic nuclei) rather than merely resemble them.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage

from .calibration import PixelSize, tiff_resolution
from .canvas import Box, CanvasSurvey, blank_outside, canvas_note, crop_sample, field_box
from .channels import (ALL_CHANNELS, AUTO, SAMPLE_SIDE, as_channels, check_channel, choose_channel_of_sample,
                       display_rgb, intensity_image, network_rgb)
from .config import PostprocessSettings, ReadLimits
from .diameter_check import narrow_image_note, too_small_note
from .exports import FORMATS
from .imageio import (MAX_CHANNELS, TIFF_MAGIC, ImageReadError, UnitScale, alpha_sample_count, note_planes,
                      read_raw_channels, rgb_png_bytes, tiff_plane_shape, to_uint8, unnamed_channel_stack,
                      unnamed_channels_note)
from .inference import ProgressCallback, Stretch, predict_preprocessed
from .measure import COLUMNS, channel_intensities, measure_nuclei
from .memory import release_free_memory
from .model import NucleiModel
from .overlay import draw_overlay
from .pipeline import MAX_NETWORK_PIXELS, REFINE_TOLERANCE, Prediction, inference_for, labels_for
from .planes import PlaneRequest, no_stack_note, read_planes, resolve
from .results import csv_bytes, partial_path, write_atomically
from .sampling import percentile_stride, side_stride
from .scale import ESTIMATOR_MAX_SIDE, content_corner, estimate_diameter, linear_along, scale_factor, scaled_shape
from .size_search import checked_estimate, fallback_diameter

# Core side, px. With the bundled model (2 CPU cores) 1024 to 2048 take the same time per
# pixel (the margin's extra work is paid back by smaller arrays), and 1536 peaked lowest:
# 1.3 GB for the whole process on a 6000x6000 image, against 1.5 GB for 1024 and 2048.
DEFAULT_BLOCK = 1536
FOCUS_WINDOW = 1024         # side of the central window a huge Z-stack's sharpest plane is judged on
MIN_BLOCK = 64              # smaller cores would be mostly margin
# The margin must hold the largest nucleus (a few times the typical diameter) and give the
# network the context it has inside a whole image: its own tiles overlap by 64 network px.
MARGIN_DIAMETERS = 3.0
NETWORK_CONTEXT_PX = 96
OVERVIEW_SIDE = 2048        # longest side of the overlay PNG (and of the overview sample)
LABEL_TILE = 512            # tile side of the label TIFF
SURVEY_BYTES = 64 * 2**20   # one read of the survey pass
MAX_CHUNK_BYTES = 256 * 2**20  # a compressed strip or tile larger than this can't be read by blocks
# An upload under the pixel limit is still read lazily above this many bytes of pixels: a 40 Mpx
# stack of 8 float64 channels would take 2.5 GB decoded.
MAX_STORED_BYTES = 256 * 2**20
SCRATCH_PREFIX = ".nuclei_blocks_"  # hidden: a folder scan of the output folder passes it over


# ---------------------------------------------------------------------------------------
# Which images go block by block


def needs_blocks(path: str | Path, limits: ReadLimits = ReadLimits()) -> bool:
    """True for a TIFF too large to read whole: its full-resolution level has more than
    ``limits.max_pixels`` pixels, or the file is over ``limits.max_file_bytes``.

    Other formats are never read by blocks: above the limit ``imageio`` refuses them
    (decompression bombs). A damaged TIFF answers False, so that ``imageio`` reports it.
    Whether the TIFF's layout allows reading by blocks is checked when it is opened
    (``TiffSource``), which says what is wrong with it if not."""
    path = Path(path)
    size = tiff_size(path)
    try:
        return size is not None and (size[0] * size[1] > limits.max_pixels or path.stat().st_size > limits.max_file_bytes)
    except OSError:  # gone since: imageio will say so
        return False


def tiff_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) of a TIFF's full-resolution plane, from its header alone; None for a
    file that is not a TIFF or whose header can't be read (imageio says why when it reads it)."""
    path = Path(path)
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as handle:
            if handle.read(4) not in TIFF_MAGIC:
                return None
        with tifffile.TiffFile(path) as tif:
            height, width = tiff_plane_shape(tif.series[0].levels[0])
        return int(height), int(width)
    except Exception:  # noqa: BLE001 - unreadable here means imageio will say why
        return None


# ---------------------------------------------------------------------------------------
# Where pixels come from: any image readable by windows


class BlockSource(Protocol):
    """An (H, W, C) image read by windows as float32 in [0, 1], as ``read_channels`` gives."""
    height: int
    width: int
    channels: int
    survey_block: tuple[int, int]  # (rows, columns) that one read of a whole-image pass takes
    notes: list[str]               # what the user should know about how it was read (imageio's notes)

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray: ...


@dataclass
class ArraySource:
    """An image in memory: (H, W) or (H, W, C) float in [0, 1], or pixels as stored with
    their ``scale`` (``imageio.read_raw_channels``), converted to float a window at a time."""
    array: np.ndarray
    scale: UnitScale = UnitScale(0.0, 1.0, "identity")
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.array = as_channels(self.array)
        self.height, self.width, self.channels = self.array.shape
        # Bands of rows, as TiffSource reads: never a float copy of the whole image at once.
        self.survey_block = (max(1, SURVEY_BYTES // (self.width * self.channels * 4)), self.width)

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        return self.scale.apply(self.array[top:bottom, left:right])


class TiffSource:
    """The full-resolution level of a TIFF's first series, read by windows, never whole.

    Channels are the C or S axis (alpha dropped); a Z-stack gives the plane ``plane`` chooses
    (``planes``: a number, the sharpest, or their maximum, window by window), other axes (T,
    ...) their first plane, as ``imageio`` does. Tiled and stripped data are read through
    tifffile's zarr store (zarr decodes only the tiles or strips a window touches);
    uncompressed contiguous data (ImageJ's big TIFFs are one strip) row by row with explicit
    file reads."""

    def __init__(self, path: str | Path, name: str | None = None, plane: PlaneRequest = PlaneRequest()):
        self.path, self.name, self._plane = Path(path), name or str(path), plane
        self.notes: list[str] = []  # how it was read (the Z plane), as imageio's notes
        self._contiguous: ContiguousArray | None = None
        try:
            self._tif = tifffile.TiffFile(self.path)
        except Exception as error:  # noqa: BLE001 - any parsing failure is the file's
            raise ImageReadError(self.name, f"not a readable TIFF file ({_describe(error)}).") from None
        try:
            self._open(self._tif.series[0].levels[0])
        except BaseException:
            self.close()
            raise

    def _open(self, level) -> None:
        axes, shape = level.axes, tuple(level.shape)
        if unnamed_channel_stack(level):  # as imageio reads it whole (a huge one read as planes had one channel)
            axes = "C" + axes[1:]
            self.notes.append(unnamed_channels_note(shape[0]))
        if "Y" not in axes or "X" not in axes:
            raise ImageReadError(self.name, f"unsupported TIFF layout (axes {axes!r}); expected an image with Y "
                                            "and X axes.")
        self.height, self.width = shape[axes.index("Y")], shape[axes.index("X")]
        self._channel_axis = _channel_axis(axes, shape, self.name)
        kept = [a for a in axes if a in ("Y", "X", self._channel_axis)]
        self._to_yxc = [kept.index(a) for a in ("Y", "X", self._channel_axis) if a in kept]
        self._axes, self._shape = axes, shape
        samples = shape[axes.index(self._channel_axis)] if self._channel_axis else 1
        # An 8-bit alpha is dropped; another stays a channel, as imageio keeps any that varies (a
        # 16-bit 4-channel stack tagged alpha by its writer): judging it would take a pass here.
        self._alpha = alpha_sample_count(level.keyframe, samples) \
            if self._channel_axis == "S" and np.dtype(level.dtype) == np.uint8 else 0
        self.channels = samples - self._alpha
        if self.channels > MAX_CHANNELS:
            raise ImageReadError(self.name, f"{self.channels} channels; at most {MAX_CHANNELS} are supported. "
                                            "Save the nuclear channel, or a few channels, as their own file.")
        self.dtype = np.dtype(level.dtype)
        self._reader = self._raw_reader(level)
        self._planes = self._z_planes(dict(zip(axes, shape)))
        self._read_raw(0, 1, 0, 1)  # a compression without its codec fails now, not after the survey
        self.survey_block = self._survey_block()
        self.scale = UnitScale.for_dtype(self.dtype) or self._scan_range()

    def _raw_reader(self, level) -> Callable[[tuple], np.ndarray]:
        offset = level.dataoffset
        if offset is not None and _rows_are_runs(self._axes, self._channel_axis):
            stored = np.dtype(self._tif.byteorder + self.dtype.char)
            self._contiguous = ContiguousArray(self.path, offset, self._shape, stored, self._axes.index("Y"))
            self._chunk = (1, self.width)
            return self._contiguous.read
        try:
            import zarr
        except ImportError:
            raise ImageReadError(self.name, "reading a TIFF this large block by block needs the zarr package "
                                            "(pip install -r requirements-cli.txt).") from None
        array = zarr.open_array(self._tif.aszarr(series=0, level=0), mode="r")
        chunk_bytes = math.prod(array.chunks) * self.dtype.itemsize
        if chunk_bytes > MAX_CHUNK_BYTES:
            rows, columns = (array.chunks[self._axes.index(a)] for a in "YX")
            raise ImageReadError(self.name, f"{self.width}x{self.height} pixels (over the in-memory limit: a "
                                            "decompression bomb, or an image too large to read whole), stored in "
                                            f"compressed pieces of {columns}x{rows} pixels "
                                            f"({chunk_bytes / 2**20:.0f} MB each), too large to read block by block. "
                                            "Save it as a tiled TIFF (e.g. 512x512 tiles: QuPath, Fiji's Bio-Formats "
                                            "exporter and bfconvert can).")
        axes = self._axes
        self._chunk = (array.chunks[axes.index("Y")], array.chunks[axes.index("X")])
        return lambda index: array[index]

    def _z_planes(self, shape: dict[str, int]) -> list[int]:
        """The Z planes every window is read from (their maximum where several); the notes
        say which, and that other axes (T, ...) give their first plane, as imageio's."""
        count = shape.get("Z", 1)
        if count <= 1:
            self.notes += filter(None, [no_stack_note(self._plane)])
        if count <= 1 or self._plane.z is None:
            note_planes(shape, self.notes)
            return [0]
        # The sharpest plane is judged on a central window where the image is larger: the
        # whole slide would mean reading every plane whole.
        rows, columns = min(FOCUS_WINDOW, self.height), min(FOCUS_WINDOW, self.width)
        top, left = (self.height - rows) // 2, (self.width - columns) // 2
        window = (rows, columns) if (rows, columns) != (self.height, self.width) else None
        try:
            planes, note = resolve(self._plane, count, lambda z: self._read_plane(z, top, top + rows, left,
                                                                                  left + columns), window)
        except ValueError as error:
            raise ImageReadError(self.name, str(error)) from None
        note_planes(shape, self.notes, note)
        return planes

    def _survey_block(self) -> tuple[int, int]:
        """Whole chunks per read: a stripped file is read in full-width bands, whose strips
        are decoded once, a tiled one in squares of tiles."""
        rows, columns = self._chunk
        pixel = max(1, self.channels) * 4
        if columns >= self.width:
            band = max(rows, (SURVEY_BYTES // (self.width * pixel)) // rows * rows)
            return band, self.width
        side = max(1, int(math.sqrt(SURVEY_BYTES / pixel)))
        return max(rows, side // rows * rows), max(columns, side // columns * columns)

    def _scan_range(self) -> UnitScale:
        """Finite min and max over the whole image (floats, 32/64-bit integers), one pass."""
        low, high = math.inf, -math.inf
        for top, bottom, left, right in _windows(self.height, self.width, self.survey_block):
            raw = self._read_raw(top, bottom, left, right)
            finite = raw[np.isfinite(raw)] if np.issubdtype(raw.dtype, np.floating) else raw
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
        if low > high:  # no finite value at all: black, as imageio makes it
            return UnitScale(0.0, 0.0, "minmax")
        return UnitScale.for_range(self.dtype, low, high)

    def _read_raw(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        return read_planes(lambda z: self._read_plane(z, top, bottom, left, right), self._planes)

    def _read_plane(self, plane: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        index = tuple(slice(top, bottom) if a == "Y" else slice(left, right) if a == "X"
                      else slice(None) if a == self._channel_axis else plane if a == "Z" else 0 for a in self._axes)
        try:
            raw = np.asarray(self._reader(index))
        except ImageReadError:
            raise
        except Exception as error:  # noqa: BLE001 - decoders fail with many types; it is the file
            raise ImageReadError(self.name, f"the file is damaged or truncated, or uses a compression this "
                                            f"installation can't decode ({_describe(error)}).") from None
        raw = np.transpose(raw, self._to_yxc)
        raw = raw[..., None] if raw.ndim == 2 else raw
        return raw[..., : raw.shape[-1] - self._alpha] if self._alpha else raw

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        return self.scale.apply(self._read_raw(top, bottom, left, right))

    def close(self) -> None:
        if self._contiguous is not None:
            self._contiguous.close()
        self._tif.close()

    def __enter__(self) -> TiffSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _channel_axis(axes: str, shape: tuple[int, ...], name: str) -> str | None:
    candidates = [a for a in ("C", "S") if a in axes]
    if len(candidates) == 2:
        sizes = {a: shape[axes.index(a)] for a in candidates}
        if min(sizes.values()) > 1:
            raise ImageReadError(name, f"both channels and samples per pixel ({sizes}); save one channel per plane.")
        return max(candidates, key=sizes.get)
    return candidates[0] if candidates else None


def _rows_are_runs(axes: str, channel_axis: str | None) -> bool:
    """A window's rows are runs of bytes in the C-order array: Y, then X, then at most the
    samples, read whole (``ContiguousArray``'s layout)."""
    y = axes.index("Y")
    return axes[y + 1:y + 2] == "X" and axes[y + 2:] in ("", "S") and axes[y + 2:] in ("", channel_axis)


def _describe(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


# ---------------------------------------------------------------------------------------
# Raw arrays on disk, read and written by explicit file I/O


class ContiguousArray:
    """A C-order array of axes (planes..., Y, X, samples...) stored at ``offset`` in a file,
    read (and written) by runs of one row.

    pread/pwrite rather than ``np.memmap``: pages of a mapped file count in the process's
    resident memory for as long as they stay mapped, whereas file reads pass through the
    page cache, which the kernel reclaims."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype, y_axis: int,
                 writable: bool = False):
        self.shape, self.dtype, self.offset, self.y_axis = tuple(shape), np.dtype(dtype), offset, y_axis
        # elements per step along each axis
        self.steps = [math.prod(self.shape[a + 1:]) for a in range(len(self.shape))]
        self._fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)

    def read(self, index: tuple) -> np.ndarray:
        """``array[index]``: an int or a slice per plane axis, slices for Y and X, whole samples."""
        y = self.y_axis
        planes = [range(*i.indices(n)) if isinstance(i, slice) else range(i, i + 1)
                  for i, n in zip(index[:y], self.shape[:y])]
        rows, columns = (range(*i.indices(n)) for i, n in zip(index[y:y + 2], self.shape[y:y + 2]))
        shape = [len(r) for r, i in zip(planes, index) if isinstance(i, slice)] + [len(rows), len(columns)]
        out = np.empty(shape + list(self.shape[y + 2:]), self.dtype)
        # Whole rows follow each other in the file: one read per plane instead of one per row.
        whole = len(columns) == self.shape[y + 1]
        runs = out.reshape(-1, (len(rows) if whole else 1) * len(columns) * self.steps[y + 1])
        starts = [rows.start] if whole else rows
        for run, (plane, row) in enumerate(product(product(*planes), starts)):
            element = (sum(p * self.steps[a] for a, p in enumerate(plane)) + row * self.steps[y]
                       + columns.start * self.steps[y + 1])
            self._read_into(runs[run], self.offset + element * self.dtype.itemsize)
        return out

    def _read_into(self, buffer: np.ndarray, offset: int) -> None:
        done = os.preadv(self._fd, [buffer.view(np.uint8)], offset)
        if done != buffer.nbytes:
            raise OSError(f"the file ends {buffer.nbytes - done} bytes early")

    def write(self, top: int, left: int, values: np.ndarray) -> None:
        """Rows of a 2-D window into a 2-D (Y, X) array (the label sink)."""
        values = np.ascontiguousarray(values, self.dtype)
        itemsize = self.dtype.itemsize
        for row in range(values.shape[0]):
            os.pwrite(self._fd, values[row], self.offset + ((top + row) * self.shape[1] + left) * itemsize)

    def close(self) -> None:
        os.close(self._fd)


# ---------------------------------------------------------------------------------------
# Where labels go: the whole image's labels, written and read back by windows


class LabelSink(Protocol):
    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray: ...

    def write(self, top: int, left: int, labels: np.ndarray) -> None: ...

    def clear(self) -> None: ...


class ArraySink:
    """Labels in memory (int32, as ``pipeline.segment`` returns them): for ordinary images."""

    def __init__(self, height: int, width: int):
        self.labels = np.zeros((height, width), np.int32)

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        return self.labels[top:bottom, left:right].copy()

    def write(self, top: int, left: int, labels: np.ndarray) -> None:
        self.labels[top:top + labels.shape[0], left:left + labels.shape[1]] = labels

    def clear(self) -> None:
        self.labels[:] = 0


class DiskSink:
    """uint32 labels in a raw file: 4 bytes a pixel on disk, only the window at hand in
    memory. The file starts sparse (all zeros) and fills as blocks are written."""

    def __init__(self, path: Path, height: int, width: int):
        self._path, self._size = path, height * width * 4
        self.clear()
        self._array = ContiguousArray(path, 0, (height, width), np.dtype("<u4"), y_axis=0, writable=True)

    def clear(self) -> None:
        """All zeros again, without writing them: a sparse file."""
        with open(self._path, "wb") as handle:
            handle.truncate(self._size)

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        return self._array.read((slice(top, bottom), slice(left, right)))

    def write(self, top: int, left: int, labels: np.ndarray) -> None:
        self._array.write(top, left, labels)

    def close(self) -> None:
        self._array.close()


# ---------------------------------------------------------------------------------------
# One pass over the whole image: the samples whole-image decisions are made on


@dataclass(frozen=True)
class Overview:
    percentile: np.ndarray  # image[::s, ::s] with inference.percentile_sample's stride
    channels: np.ndarray    # image[::c, ::c] with channels._sample's stride (what choose_channel looks at)
    display: np.ndarray     # image[::d, ::d], longest side <= OVERVIEW_SIDE: the overlay's background
    display_stride: int
    content: Box | None     # the field of view inside a blank canvas (canvas.content_box)
    shape: tuple[int, int]  # the image's (height, width)

    @property
    def channels_field(self) -> np.ndarray:
        """``channels`` inside the content box: what ``choose_channel`` looks at."""
        return crop_sample(self.channels, self.content, side_stride(self.shape, SAMPLE_SIDE))

    @property
    def percentile_field(self) -> np.ndarray:
        """``percentile`` inside the content box: what ``preprocess``'s stretch is fitted on."""
        return crop_sample(self.percentile, self.content, percentile_stride(*self.shape))


def survey(source: BlockSource) -> Overview:
    """One pass over the image for the samples every whole-image decision is made on, and
    for the content box inside a blank canvas (as ``canvas.content_box`` finds it)."""
    height, width = source.height, source.width
    strides = (percentile_stride(height, width), side_stride((height, width), SAMPLE_SIDE),
               side_stride((height, width), OVERVIEW_SIDE))
    canvas = CanvasSurvey(source.read(0, 1, 0, width)[0], source.read(height - 1, height, 0, width)[0], height)
    percentile, channels, display = gather_strided(source.read, height, width, strides, source.survey_block,
                                                   canvas.add)
    return Overview(percentile, channels, display, strides[2], field_box(canvas, source.read, percentile),
                    (height, width))


def gather_strided(read: Callable[[int, int, int, int], np.ndarray], height: int, width: int,
                   strides: Sequence[int], block: tuple[int, int],
                   visit: Callable[[np.ndarray, int, int], None] | None = None) -> list[np.ndarray]:
    """``image[::s, ::s]`` for each stride, from one pass of reads of ``block`` (rows, columns);
    ``visit(part, top, left)`` sees every part read."""
    samples: list[np.ndarray | None] = [None] * len(strides)
    for top, bottom, left, right in _windows(height, width, block):
        part = read(top, bottom, left, right)
        if visit is not None:
            visit(part, top, left)
        for k, stride in enumerate(strides):
            if samples[k] is None:
                samples[k] = np.empty((-(-height // stride), -(-width // stride)) + part.shape[2:], part.dtype)
            rows, columns = -top % stride, -left % stride  # first rows and columns on the global grid
            piece = part[rows::stride, columns::stride]
            if piece.size:
                y, x = (top + rows) // stride, (left + columns) // stride
                samples[k][y:y + piece.shape[0], x:x + piece.shape[1]] = piece
    return samples


def _windows(height: int, width: int, block: tuple[int, int]) -> Iterator[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of reads of ``block`` covering the image, in row-major order."""
    rows, columns = block
    for top in range(0, height, rows):
        for left in range(0, width, columns):
            yield top, min(top + rows, height), left, min(left + columns, width)


# ---------------------------------------------------------------------------------------
# Blocks and stitching (independent of the network: any segmenter of a window will do)


@dataclass(frozen=True)
class Block:
    top: int     # the core: this block keeps the objects whose centroid lies in
    bottom: int  # [top, bottom) x [left, right)
    left: int
    right: int
    window: tuple[int, int, int, int]  # (top, bottom, left, right): core plus margin, within the image


def plan_blocks(height: int, width: int, core: int, margin: int) -> list[Block]:
    def window(top: int, bottom: int, left: int, right: int) -> tuple[int, int, int, int]:
        return max(0, top - margin), min(height, bottom + margin), max(0, left - margin), min(width, right + margin)

    return [Block(*core_box, window(*core_box)) for core_box in _windows(height, width, (core, core))]


# (the pixels of a block's window (h, w, C), the block) -> labels (h, w): 0 background, 1..n
Segmenter = Callable[[np.ndarray, Block], np.ndarray]


# Blocks an estimated scale is checked on (see segment_source): tens of thousands of nuclei,
# whose median diameter is the whole image's within a fraction of a percent.
SCALE_CHECK_BLOCKS = 16
# How far beyond its core a block keeps objects, px: more than a centroid moves between two
# blocks' versions of one nucleus (a fraction of a pixel with the network's context matched).
CENTROID_TOLERANCE = 2.0


@dataclass
class Stitched:
    table: pd.DataFrame
    count: int
    oversized: int = 0   # objects wider than the margin, kept cut at their block's edge
    duplicates: int = 0  # second versions of a nucleus a neighbour already wrote, dropped
    intensities: pd.DataFrame | None = None  # measure.channel_intensities's table, where asked for


def stitch_blocks(source: BlockSource, segment_block: Segmenter | None, sink: LabelSink, blocks: Sequence[Block],
                  intensity: Callable[[np.ndarray], np.ndarray] | None = None,
                  progress: ProgressCallback | None = None, tolerance: float = CENTROID_TOLERANCE,
                  start: Stitched | None = None, labelled: Iterable[np.ndarray] | None = None,
                  intensities: bool = False, field: Box | None = None) -> Stitched:
    """Segments each block's window and writes the objects it keeps into ``sink`` with ids
    in block order, after those of ``start`` (blocks already written); measures each
    object once, in the block that writes it, and with ``intensities`` every channel's
    intensity in it too. ``labelled``: the blocks' labels, in order, computed elsewhere (a
    cluster) instead of by ``segment_block``. ``field``: the field of view on a blank canvas,
    whose edge cuts nuclei as the image's does (``measure.touches_border``)."""
    result = start or Stitched(pd.DataFrame(columns=COLUMNS), 0)
    tables = [result.table] if len(result.table) else []
    channel_tables = [result.intensities] if result.intensities is not None else []
    labelled = iter(labelled) if labelled is not None else None
    for done, block in enumerate(blocks, start=1):
        pixels = source.read(*block.window)
        local = np.asarray(next(labelled) if labelled is not None else segment_block(pixels, block))
        keep, cut = objects_to_keep(local, block, source.height, source.width, tolerance)
        top, _, left, _ = block.window
        claimed = sink.read(*block.window)
        ids, new, duplicates = place_objects(local, keep, claimed, result.count + 1, cut)
        sink.write(top, left, np.where(new, ids.astype(claimed.dtype)[local], claimed))
        ranks = np.where(ids > 0, ids - result.count, 0).astype(np.int32)  # 1..k: this block's objects
        fresh = np.where(new, ranks[local], 0)
        table = measure_nuclei(fresh, intensity(pixels) if intensity else pixels, field and field.shifted(-top, -left))
        if intensities:
            measured = channel_intensities(fresh, pixels)
            measured["nucleus"] += result.count
            channel_tables.append(measured)
        if len(table):
            # A piece of an object cut by the window is not the whole object either.
            table["touches_border"] |= cut[np.flatnonzero(ids)]
            table["nucleus"] += result.count
            table["centroid_y"] += top
            table["centroid_x"] += left
            tables.append(table)
        result.count += int(np.count_nonzero(ids))
        result.oversized += int(np.count_nonzero(keep & cut & (ids > 0)))
        result.duplicates += duplicates
        # glibc keeps freed heap pages for reuse; blocks of different shapes then fragment
        # it and resident memory creeps up block after block. Handing them back keeps each
        # block's peak at the last one's.
        del pixels, local, claimed, new, fresh
        release_free_memory()
        if progress:
            progress(done, len(blocks))
    if tables:
        result.table = pd.concat(tables, ignore_index=True)
    if intensities:  # the empty tables only where all are (their columns give the CSV's header)
        result.intensities = pd.concat([t for t in channel_tables if len(t)] or channel_tables[:1], ignore_index=True)
    return result


def objects_to_keep(local: np.ndarray, block: Block, height: int, width: int,
                    tolerance: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, cut) per local id: kept when the centroid lies in the block's core (widened
    by ``tolerance`` px); cut when the object touches an edge of the window that is not an
    edge of the image."""
    count = int(local.max(initial=0))
    top, bottom, left, right = block.window
    area, y, x = _centroids(local, count)
    y, x = top + y, left + x
    kept = ((area > 0) & (block.top - tolerance <= y) & (y < block.bottom + tolerance)
            & (block.left - tolerance <= x) & (x < block.right + tolerance))
    kept[0] = False
    edges = [edge for edge, inside in ((local[0], top > 0), (local[-1], bottom < height),
                                       (local[:, 0], left > 0), (local[:, -1], right < width)) if inside]
    cut = np.zeros(count + 1, bool)
    if edges:
        cut[np.unique(np.concatenate(edges))] = True
    cut[0] = False
    return kept, cut


def _centroids(labels: np.ndarray, count: int, band: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(area, mean row, mean column) per id 0..count, summed over bands of rows so that the
    weights never take more than a band's worth of memory (an image-sized float64 array of
    row numbers would be 40 MB a block)."""
    area, rows, columns = (np.zeros(count + 1) for _ in range(3))
    width = labels.shape[1]
    for start in range(0, labels.shape[0], band):
        part = labels[start:start + band].ravel()
        height = len(part) // width
        area += np.bincount(part, minlength=count + 1)
        rows += np.bincount(part, np.repeat(np.arange(start, start + height, dtype=np.float64), width), count + 1)
        columns += np.bincount(part, np.tile(np.arange(width, dtype=np.float64), height), count + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return area, rows / area, columns / area


def place_objects(local: np.ndarray, keep: np.ndarray, claimed: np.ndarray, first_id: int,
                  cut: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(global id per local id (0: not written), pixels to write, duplicates dropped).

    Pixels already labelled by an earlier block stay as they are. A kept object more than
    half on such pixels is a nucleus a neighbour already wrote (near a core border both
    keep it) and is dropped; a smaller overlap leaves the object its unclaimed pixels. So
    does any overlap for an object ``cut`` by the window: each block has a different
    piece of it, and every piece is needed for the object to be covered."""
    count = len(keep) - 1
    taken = claimed > 0
    area = np.bincount(local.ravel(), minlength=count + 1)
    overlap = np.bincount(local[taken], minlength=count + 1)
    duplicate = keep & (2 * overlap > area)
    if cut is not None:
        duplicate &= ~cut
    written = keep & ~duplicate
    ids = np.zeros(count + 1, np.int64)
    ids[written] = first_id + np.arange(int(written.sum()))
    return ids, written[local] & ~taken, int(duplicate.sum())


# ---------------------------------------------------------------------------------------
# The network's side: decisions made once per image, and the segmenter of one block


@dataclass(frozen=True)
class ImagePlan:
    """What is decided once for the whole image, so that every block is segmented alike."""
    channel: int | str
    stretch: Stretch
    diameter: float | None   # px; None: the model has no scale and runs at the image's own
    diameter_source: str     # as Prediction.diameter_source
    factor: float            # network resampling, the same for every block
    margin: int              # px of context on each side of a core
    core: int                # core side, px
    content: Box | None = None  # outside it, a blank canvas: the network's background


@dataclass(frozen=True)
class BlockJob:
    """What segmenting any block of an image takes besides its pixels (sent to cluster workers)."""
    plan: ImagePlan
    settings: PostprocessSettings
    tta: bool | None
    height: int
    width: int


# Segments an image's blocks elsewhere (``cluster_blocks.ClusterBlocks``: on Dask workers):
# (job, blocks, scale check or None) -> each block's window labels, in the blocks' order; the
# nuclei the check needs are added to it as the labels arrive.
BlockRunner = Callable[[BlockJob, Sequence[Block], "ScaleCheck | None"], Iterator[np.ndarray]]


def segment_source(model: NucleiModel, source: BlockSource, sink: LabelSink, settings: PostprocessSettings | None,
                   diameter: float | None, channel: int | str, tta: bool | None, block_size: int,
                   progress: ProgressCallback | None = None, runner: BlockRunner | None = None,
                   intensities: bool = False) -> tuple[ImagePlan, Overview, list[Block], Stitched]:
    """The pipeline's decisions for the whole image, then the blocks, as ``pipeline.segment``
    decides and segments a whole image:

    - channel: ``choose_channel`` on the pixels it samples from a whole image;
    - stretch: ``preprocess``'s percentiles, of the same strided sample;
    - diameter: given; or estimated on the same crop (``estimate_diameter``) and
      checked against the nuclei found there with the model's tuned settings: more than
      ``REFINE_TOLERANCE`` away, every block is segmented again at their median diameter.
      The check is made on the first ``SCALE_CHECK_BLOCKS`` blocks, spread over the image
      (on all blocks of a smaller image, which then gets the whole image's diameter
      exactly): a wrong estimate costs those blocks, not a whole pass. Where those blocks
      hold no nuclei at all, the size search's best-agreeing probe is tried instead
      (``fallback_diameter``), as for a whole image.

    ``runner``: the blocks are segmented by it (on a cluster) rather than here; the
    decisions above and the stitching stay in this process. ``intensities``: the stitched
    result has every channel's intensity in each nucleus (``Stitched.intensities``)."""
    check_arguments(source, diameter, channel, block_size)  # before any pass over a huge image
    overview = survey(source)
    chosen = choose_channel_of_sample(overview.channels_field) if channel == AUTO else channel
    stretch = Stretch.fit(network_rgb(overview.percentile_field, chosen), model.normalisation)
    settings = settings or model.postprocess_settings

    def plan_for(found: float | None, found_source: str, typical: float) -> tuple[ImagePlan, list[Block]]:
        factor = scale_factor(found, model.diameter)
        margin = block_margin(typical, factor)
        plan = ImagePlan(chosen, stretch, found, found_source, factor, margin, block_core(block_size, margin, factor),
                         overview.content)
        return plan, plan_blocks(source.height, source.width, plan.core, plan.margin)

    def stitch(plan: ImagePlan, blocks: list[Block], check: ScaleCheck | None = None, start: Stitched | None = None,
               done: int = 0, total: int = 0) -> Stitched:
        job = BlockJob(plan, settings, tta, source.height, source.width)
        segmenter = job_segmenter(model, job, check) if runner is None else None
        labelled = runner(job, blocks, check) if runner is not None else None
        report = (lambda d, t: progress(done + d, total or t)) if progress else None
        # closing: a failed stitch stops the runner's blocks in flight now, not when collected.
        with closing(labelled) if labelled is not None else nullcontext():
            return stitch_blocks(source, segmenter, sink, blocks, lambda pixels: intensity_image(pixels, chosen),
                                 report, start=start, labelled=labelled, intensities=intensities,
                                 field=overview.content)

    if diameter is not None:
        plan, blocks = plan_for(float(diameter), "given", float(diameter))
        return plan, overview, blocks, stitch(plan, blocks)
    window = _diameter_window(source, overview, chosen, stretch, ESTIMATOR_MAX_SIDE)
    probed: dict = {}
    estimate = checked_estimate(model, window, estimate_diameter(window), probed)
    del window
    if model.diameter is None:  # no scale in the model: the image's own; the estimate sizes the margin
        plan, blocks = plan_for(None, "none", estimate)
        return plan, overview, blocks, stitch(plan, blocks)
    plan, blocks = plan_for(estimate, "estimated", estimate)
    # The scale is checked on blocks spread over the field; every other block follows.
    checked, _ = spread(in_field(blocks, overview.content), SCALE_CHECK_BLOCKS)
    checked_ids = {id(block) for block in checked}
    others = [block for block in blocks if id(block) not in checked_ids]
    check = ScaleCheck(model.postprocess_settings)
    stitched = stitch(plan, checked, check, total=len(blocks))
    measured = check.median() or fallback_diameter(probed)
    if measured and abs(math.log(measured / estimate)) > math.log(REFINE_TOLERANCE):
        sink.clear()
        plan, blocks = plan_for(measured, "measured", measured)
        return plan, overview, blocks, stitch(plan, blocks)
    return plan, overview, blocks, stitch(plan, others, start=stitched, done=len(checked), total=len(blocks))


def spread(blocks: list[Block], count: int) -> tuple[list[Block], list[Block]]:
    """(at most ``count`` blocks on an evenly spaced grid of rows and columns of blocks, the
    others); all blocks, in order, where there are no more than ``count``."""
    if len(blocks) <= count:
        return list(blocks), []
    tops, lefts = sorted({b.top for b in blocks}), sorted({b.left for b in blocks})
    rows = min(len(tops), math.isqrt(count))
    columns = min(len(lefts), count // rows)

    def evenly(values: list[int], how_many: int) -> set[int]:
        return {values[i] for i in np.linspace(0, len(values) - 1, how_many).round().astype(int)}

    picked_tops, picked_lefts = evenly(tops, rows), evenly(lefts, columns)
    chosen = [b for b in blocks if b.top in picked_tops and b.left in picked_lefts]
    return chosen, [b for b in blocks if not (b.top in picked_tops and b.left in picked_lefts)]


def in_field(blocks: list[Block], content: Box | None) -> list[Block]:
    """The blocks whose core holds part of the field of view (all, without a canvas): those
    on the canvas alone have no nuclei to check the scale with."""
    if content is None:
        return list(blocks)
    return [b for b in blocks if not Box(b.top, b.bottom, b.left, b.right).intersection(content).empty]


def check_arguments(source: BlockSource, diameter: float | None, channel: int | str, block_size: int) -> None:
    if block_size < MIN_BLOCK:
        raise ValueError(f"the block size must be at least {MIN_BLOCK} px, got {block_size}.")
    if diameter is not None and not (math.isfinite(diameter) and diameter > 0):
        raise ValueError(f"diameter must be a positive number of pixels, got {diameter}.")
    if channel != AUTO:
        check_channel(np.empty((1, 1, source.channels), np.float32), channel)


def _diameter_window(source: BlockSource, overview: Overview, channel: int | str, stretch: Stretch,
                     side: int) -> np.ndarray:
    """The crop ``estimate_diameter`` takes of a whole image's network input
    (``scale.content_crop``: centred on the field of view, unless that is dark, and without
    the canvas around it), found on the overview."""
    stride = overview.display_stride
    field = overview.content or Box(0, source.height, 0, source.width)
    reduced_field = field.strided(stride, overview.display.shape)
    reduced = blank_outside(stretched_input(overview.display, channel, stretch), reduced_field)
    corner = content_corner(reduced, max(1, side // stride), reduced_field)
    top, left = min(corner[0] * stride, max(0, source.height - side)), min(corner[1] * stride, max(0, source.width - side))
    window = Box(top, top + side, left, left + side).intersection(field)
    return stretched_input(source.read(window.top, window.bottom, window.left, window.right), channel, stretch)


@dataclass
class ScaleCheck:
    """The pipeline's check of an estimated scale, gathered block by block: the diameters
    (sqrt(4 area / pi), as ``scale.median_diameter``) of the nuclei found with the model's
    tuned settings, not the caller's, so that moving a threshold never changes the scale.
    Each nucleus counts once, in the block whose core holds its centroid."""
    settings: PostprocessSettings
    diameters: list[np.ndarray] = field(default_factory=list)

    def add(self, labels: np.ndarray, block: Block, height: int, width: int) -> None:
        kept, _ = objects_to_keep(labels, block, height, width)
        areas = np.bincount(labels.ravel(), minlength=len(kept))[kept]
        self.diameters.append(np.sqrt(4.0 * areas / math.pi))

    def median(self) -> float | None:
        diameters = np.concatenate(self.diameters) if self.diameters else np.zeros(0)
        return float(np.median(diameters)) if diameters.size else None


def block_margin(diameter: float, factor: float) -> int:
    """Context on each side of a core: several nucleus diameters, and at least the network
    context a pixel has inside a whole image."""
    return int(math.ceil(max(MARGIN_DIAMETERS * diameter, NETWORK_CONTEXT_PX / factor)))


def block_core(block_size: int, margin: int, factor: float) -> int:
    """``block_size``, smaller where a window would exceed the network's input cap once
    resampled (tiny nuclei are enlarged): one scale for every block, whatever its size."""
    largest = int(math.sqrt(MAX_NETWORK_PIXELS) / factor) - 2 * margin
    return max(MIN_BLOCK, min(block_size, largest))


def stretched_planes(pixels: np.ndarray, channel: int | str, stretch: Stretch) -> np.ndarray:
    """The planes ``network_rgb(pixels, channel)`` is made of, stretched: ``network_rgb`` of
    the result (with channel 0 for a channel index) is ``stretch.apply(network_rgb(pixels,
    channel))``, as the stretch is per value."""
    return stretch.apply(pixels[..., :3] if channel == ALL_CHANNELS else pixels[..., channel:channel + 1])


def planes_rgb(planes: np.ndarray, channel: int | str) -> np.ndarray:
    """``network_rgb`` of ``stretched_planes``' result (a channel index is plane 0 there)."""
    return network_rgb(planes, ALL_CHANNELS if channel == ALL_CHANNELS else 0)


def stretched_input(pixels: np.ndarray, channel: int | str, stretch: Stretch) -> np.ndarray:
    """``preprocess(network_rgb(pixels, channel))`` with the whole image's stretch."""
    return planes_rgb(stretched_planes(pixels, channel, stretch), channel)


@dataclass(frozen=True)
class NetworkGrid:
    """The whole image's network input, of which each block computes its own part exactly.

    Two things must match the whole-image path for a block's probabilities to match:
    - the sample points: ``scale.rescale_image`` resizes the whole image (``ndimage.zoom``
      in grid mode, linear, smoothed first when shrinking); a block resized on its own
      would sample points shifted by up to half a network pixel;
    - the phase of the network's pooling: a U-Net's output is the same under shifts by a
      multiple of its downsampling (``multiple``, 16) only, and the whole image's tiles
      start at such multiples. A block starting anywhere else sees its nuclei through
      another pooling grid: probabilities differ by up to 0.6 and matched IoU against the
      whole image falls to 0.97. Each block's part therefore starts at a multiple of 16 of
      the whole image's network grid (rows before the window are its edge, repeated: they
      lie in the margin)."""
    height: int
    width: int
    factor: float
    multiple: int = 16

    @property
    def identity(self) -> bool:
        return abs(self.factor - 1.0) < 1e-3  # as rescale_image: no resampling at all

    @property
    def shape(self) -> tuple[int, int]:
        """The whole image's network input size."""
        if self.identity:
            return self.height, self.width
        return scaled_shape((self.height, self.width), self.factor)

    @property
    def zoom(self) -> tuple[float, float]:
        return self.shape[0] / self.height, self.shape[1] / self.width

    def to_network(self, prepared: np.ndarray, window: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int]]:
        """(the window's part of the whole image's network input, its first network row and column)."""
        top, bottom, left, right = window
        rows = _network_indices(top, bottom, self.height, self.shape[0], self.multiple)
        columns = _network_indices(left, right, self.width, self.shape[1], self.multiple)
        if self.identity:
            picked = np.take(prepared, np.clip(rows - top, 0, bottom - top - 1), axis=0)
            picked = np.take(picked, np.clip(columns - left, 0, right - left - 1), axis=1)
            return picked, (int(rows[0]), int(columns[0]))
        if min(self.zoom) < 1.0:  # resize_image's anti-aliasing
            sigma = tuple(max(0.0, (1.0 / z - 1.0) / 2.0) for z in self.zoom) + (0.0,)
            prepared = ndimage.gaussian_filter(prepared, sigma, mode="mirror")
        sampled = linear_along(prepared, (rows + 0.5) / self.zoom[0] - 0.5 - top, axis=0)
        sampled = linear_along(sampled, (columns + 0.5) / self.zoom[1] - 0.5 - left, axis=1)
        return sampled, (int(rows[0]), int(columns[0]))

    def from_network(self, probabilities: np.ndarray, origin: tuple[int, int],
                     window: tuple[int, int, int, int]) -> np.ndarray:
        """Probabilities at the window's pixels, as the whole image's are resized back."""
        top, bottom, left, right = window
        if self.identity:
            picked = probabilities[top - origin[0]:bottom - origin[0]]
            return picked[:, left - origin[1]:right - origin[1]]
        if max(self.zoom) > 1.0:  # shrinking back: resize_image smooths first
            sigma = tuple(max(0.0, (z - 1.0) / 2.0) for z in self.zoom) + (0.0,)
            probabilities = ndimage.gaussian_filter(probabilities, sigma, mode="mirror")
        rows = (np.arange(top, bottom) + 0.5) * self.zoom[0] - 0.5 - origin[0]
        columns = (np.arange(left, right) + 0.5) * self.zoom[1] - 0.5 - origin[1]
        return linear_along(linear_along(probabilities, rows, axis=0), columns, axis=1)


def _network_indices(start: int, stop: int, length: int, network_length: int, multiple: int) -> np.ndarray:
    """Network rows for the window's [start, stop): from a multiple of ``multiple`` at or
    before the first whose sample point is in the window, to the last whose sample point
    is (at the image's own far edge, to the last row of the image's network input)."""
    zoom = network_length / length
    first = math.ceil((start + 0.5) * zoom - 0.5) // multiple * multiple
    last = network_length - 1 if stop == length else math.floor((stop - 0.5) * zoom - 0.5)
    return np.arange(first, max(first, last) + 1)


def job_segmenter(model: NucleiModel, job: BlockJob, check: ScaleCheck | None = None) -> Segmenter:
    return network_segmenter(model, job.plan, job.settings, job.tta, job.height, job.width, check)


def network_segmenter(model: NucleiModel, plan: ImagePlan, settings: PostprocessSettings, tta: bool | None,
                      height: int, width: int, check: ScaleCheck | None = None) -> Segmenter:
    """One block through the pipeline's steps with the image's fixed channel, stretch and
    network grid; ``check`` gathers the nuclei found with the model's tuned settings. On an
    image pasted onto a blank canvas, the network grid is the field of view's (as
    ``pipeline`` segments the field alone) and the canvas holds no nuclei."""
    inference = inference_for(model, tta, plan.stretch.invert)
    field = plan.content or Box(0, height, 0, width)
    grid = NetworkGrid(*field.shape, plan.factor, model.size_multiple)

    def predict_window(pixels: np.ndarray, window: tuple[int, int, int, int]) -> Prediction:
        # Stretch and resampling work plane by plane: done before network_rgb copies a grey
        # plane to three channels, they take a third of the time and memory.
        planes, origin = grid.to_network(stretched_planes(pixels, plan.channel, plan.stretch), window)
        part = planes_rgb(planes, plan.channel)
        with model.in_turn():
            probabilities = predict_preprocessed(model, part, inference, model.size_multiple)
        probabilities = grid.from_network(probabilities, origin, window)
        return Prediction(probabilities, plan.diameter, plan.diameter_source, plan.channel, plan.factor, model.diameter)

    def segment_block(pixels: np.ndarray, block: Block) -> np.ndarray:
        top, bottom, left, right = block.window
        inside = Box(*block.window).intersection(field)
        shape = (bottom - top, right - left)
        if inside.empty:
            return np.zeros(shape, np.int32)  # all canvas
        rows, columns = slice(inside.top - top, inside.bottom - top), slice(inside.left - left, inside.right - left)
        prediction = predict_window(pixels[rows, columns], (inside.top - field.top, inside.bottom - field.top,
                                                            inside.left - field.left, inside.right - field.left))

        def in_window(labels: np.ndarray) -> np.ndarray:
            placed = np.zeros(shape, labels.dtype)
            placed[rows, columns] = labels
            return placed

        labels = in_window(labels_for(model, prediction, settings))
        if check is not None:
            tuned = labels if settings == check.settings else in_window(labels_for(model, prediction, check.settings))
            check.add(tuned, block, height, width)
        return labels

    return segment_block


# ---------------------------------------------------------------------------------------
# The API: a huge TIFF to files, or an image in memory to labels


@dataclass
class BlockResult:
    table: pd.DataFrame       # measure_nuclei's columns; centroids in image px; nucleus = the label id
    height: int
    width: int
    count: int
    diameter: float | None
    diameter_source: str
    channel: int | str
    block_size: int           # core side used (smaller than asked where tiny nuclei need it)
    margin: int
    blocks: int
    oversized: int = 0        # objects wider than the margin, kept cut (touches_border True)
    duplicates: int = 0
    labels: np.ndarray | None = None                       # segment_array_in_blocks only
    files: dict[str, Path] = field(default_factory=dict)   # segment_in_blocks: "labels", "overlay"
    channels: int = 1         # the image's channel count (what a channel picker offers)
    preview: np.ndarray | None = None  # segment_to_files: the overlay's background, 8-bit RGB
    notes: list[str] = field(default_factory=list)  # how the file was read (a Z-stack's plane), a tiny diameter
    intensities: pd.DataFrame | None = None  # every channel's intensity per nucleus, where asked for
    content: Box | None = None  # the field of view on a blank canvas (canvas.content_box)


# The files segment_in_blocks writes, whatever --formats asks (the others need the whole label
# image in memory); --skip-existing looks for these (records.HUGE_IMAGE_SUFFIXES). The channel
# intensities, measured block by block, where asked for.
LABELS_SUFFIX, OVERVIEW_SUFFIX = "_labels.tif", "_overlay.png"
(INTENSITIES_SUFFIX,) = FORMATS["intensities"]


def segment_in_blocks(model: NucleiModel, path: str | Path, out_dir: str | Path, name: str,
                      settings: PostprocessSettings | None = None, diameter: float | None = None,
                      channel: int | str = AUTO, tta: bool | None = None, block_size: int = DEFAULT_BLOCK,
                      progress: ProgressCallback | None = None, runner: BlockRunner | None = None,
                      label: str | None = None, pixel_size: PixelSize | None = None,
                      plane: PlaneRequest = PlaneRequest(), intensities: bool = False) -> BlockResult:
    """Segments a TIFF of any size block by block; writes ``{name}_labels.tif`` (tiled,
    16-bit, 32-bit beyond 65,535 nuclei; ``pixel_size`` as its resolution) and
    ``{name}_overlay.png`` (longest side <= OVERVIEW_SIDE) into ``out_dir``. Raises
    ImageReadError (file and reason) for a file that can't be read, ValueError for bad
    arguments. ``runner``: see ``segment_source``; ``label``: the file's name in messages;
    ``plane``: a Z-stack's plane (``planes``); ``intensities``: also ``{name}_intensities.csv``
    (``measure.channel_intensities``'s table)."""
    with TiffSource(path, label, plane) as source:
        return segment_to_files(model, source, out_dir, name, settings, diameter, channel, tta, block_size, progress,
                                runner, pixel_size, intensities)


def segment_upload_in_blocks(model: NucleiModel, data: bytes, label: str, out_dir: str | Path, name: str,
                             settings: PostprocessSettings | None = None, diameter: float | None = None,
                             channel: int | str = AUTO, tta: bool | None = None, block_size: int = DEFAULT_BLOCK,
                             progress: ProgressCallback | None = None,
                             pixel_size: PixelSize | None = None,
                             plane: PlaneRequest = PlaneRequest(), intensities: bool = False) -> BlockResult:
    """``segment_in_blocks`` for a file's bytes (an app upload, ``label`` its name for
    messages): a TIFF too large to read whole is read lazily from a copy in ``out_dir``,
    any other image is decoded once and kept as stored, as ``imageio`` reads it (its
    decompression-bomb limit holds). Memory: the stored pixels plus one block's work."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with upload_source(data, label, out_dir, plane) as source:
        return segment_to_files(model, source, out_dir, name, settings, diameter, channel, tta, block_size, progress,
                                pixel_size=pixel_size, intensities=intensities)


@contextmanager
def upload_source(data: bytes, label: str, folder: Path,
                  plane: PlaneRequest = PlaneRequest()) -> Iterator[BlockSource]:
    handle, copy_name = tempfile.mkstemp(prefix=SCRATCH_PREFIX, suffix=".tif", dir=folder)
    os.close(handle)
    copy = Path(copy_name)
    try:
        if data[:4] in TIFF_MAGIC:
            copy.write_bytes(data)
            if needs_blocks(copy) or stored_bytes(copy) > MAX_STORED_BYTES:
                with TiffSource(copy, label, plane) as source:
                    yield source
                return
        copy.unlink()
        notes: list[str] = []
        yield ArraySource(*read_raw_channels(data, label, notes=notes, plane=plane), notes)
    finally:
        copy.unlink(missing_ok=True)


def stored_bytes(path: Path) -> int:
    """Bytes of a TIFF's full-resolution pixels as stored (0 where the header can't say)."""
    try:
        with tifffile.TiffFile(path) as tif:
            return int(tif.series[0].levels[0].nbytes)
    except Exception:  # noqa: BLE001 - the reader that follows says what is wrong with the file
        return 0


def segment_to_files(model: NucleiModel, source: BlockSource, out_dir: str | Path, name: str,
                     settings: PostprocessSettings | None, diameter: float | None, channel: int | str,
                     tta: bool | None, block_size: int, progress: ProgressCallback | None,
                     runner: BlockRunner | None = None, pixel_size: PixelSize | None = None,
                     intensities: bool = False) -> BlockResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with scratch_sink(out_dir, source.height, source.width) as sink:
        plan, overview, blocks, stitched = segment_source(model, source, sink, settings, diameter, channel, tta,
                                                          block_size, progress, runner, intensities)
        labels_path = write_label_tiff(out_dir / f"{name}{LABELS_SUFFIX}", sink, source.height, source.width,
                                       stitched.count, pixel_size)
        small = strided_labels(sink, source.height, source.width, overview.display_stride)
    preview = display_rgb(overview.display, plan.channel)
    overlay = draw_overlay(preview, small, style="outlines", opacity=1.0)
    written = {f"{name}{OVERVIEW_SUFFIX}": rgb_png_bytes(overlay)}
    if stitched.intensities is not None:
        written[f"{name}{INTENSITIES_SUFFIX}"] = csv_bytes(stitched.intensities)
    write_atomically(out_dir, written)
    files = {"labels": labels_path, "overlay": out_dir / f"{name}{OVERVIEW_SUFFIX}"}
    if stitched.intensities is not None:
        files["intensities"] = out_dir / f"{name}{INTENSITIES_SUFFIX}"
    return _result(model, source, plan, blocks, stitched, files=files, preview=to_uint8(preview))


def segment_array_in_blocks(model: NucleiModel, channels: np.ndarray, settings: PostprocessSettings | None = None,
                            diameter: float | None = None, channel: int | str = AUTO, tta: bool | None = None,
                            block_size: int = DEFAULT_BLOCK, progress: ProgressCallback | None = None,
                            runner: BlockRunner | None = None) -> BlockResult:
    """An image in memory ((H, W[, C]) float in [0, 1], as ``read_channels`` gives) segmented
    block by block (``--block-size``); ``result.labels`` holds the int32 labels."""
    source = ArraySource(channels)
    sink = ArraySink(source.height, source.width)
    plan, _, blocks, stitched = segment_source(model, source, sink, settings, diameter, channel, tta, block_size,
                                               progress, runner)
    return _result(model, source, plan, blocks, stitched, labels=sink.labels)


@contextmanager
def scratch_sink(folder: Path, height: int, width: int) -> Iterator[DiskSink]:
    """A DiskSink in a hidden folder beside the outputs (not /tmp, which may be held in
    memory), removed afterwards whatever happens."""
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=folder))
    try:
        sink = DiskSink(scratch / "labels.u32", height, width)
        try:
            yield sink
        finally:
            sink.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _result(model: NucleiModel, source: BlockSource, plan: ImagePlan, blocks: list[Block], stitched: Stitched,
            **extra) -> BlockResult:
    """The result, with its notes: how the file was read, an automatic diameter under what
    the model resolves, an image a few nuclei narrow (as every other route notes them)."""
    field = plan.content or Box(0, source.height, 0, source.width)
    notes = list(source.notes) + list(filter(None, [
        canvas_note(plan.content, (source.height, source.width)),
        too_small_note(plan.diameter, plan.diameter_source, model.diameter),
        narrow_image_note(field.shape, plan.diameter, plan.diameter_source)]))
    return BlockResult(stitched.table, source.height, source.width, stitched.count, plan.diameter,
                       plan.diameter_source, plan.channel, plan.core, plan.margin, len(blocks), stitched.oversized,
                       stitched.duplicates, channels=source.channels, notes=notes,
                       intensities=stitched.intensities, content=plan.content, **extra)


def label_dtype(count: int) -> np.dtype:
    if count > np.iinfo(np.uint32).max:
        raise ValueError(f"{count} nuclei do not fit in a 32-bit label TIFF.")
    return np.dtype(np.uint16 if count <= np.iinfo(np.uint16).max else np.uint32)


def write_label_tiff(path: Path, sink: LabelSink, height: int, width: int, count: int,
                     pixel_size: PixelSize | None = None) -> Path:
    """A tiled, deflate-compressed label TIFF streamed tile by tile from ``sink``; written
    under a temporary name first, so that an interrupted run leaves no truncated file."""
    dtype = label_dtype(count)
    tiles = (sink.read(*window).astype(dtype) for window in _windows(height, width, (LABEL_TILE, LABEL_TILE)))
    partial = partial_path(path)
    try:
        # zlib is Adobe deflate, which Fiji, QuPath and napari read (as exports.labels_tiff_bytes).
        tifffile.imwrite(partial, tiles, shape=(height, width), dtype=dtype, tile=(LABEL_TILE, LABEL_TILE),
                         photometric="minisblack", compression="zlib",
                         bigtiff=height * width * dtype.itemsize > 2**32 - 2**25, **tiff_resolution(pixel_size))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def strided_labels(sink: LabelSink, height: int, width: int, stride: int) -> np.ndarray:
    """labels[::stride, ::stride], one row read at a time."""
    return np.stack([sink.read(row, row + 1, 0, width)[0, ::stride] for row in range(0, height, stride)])
