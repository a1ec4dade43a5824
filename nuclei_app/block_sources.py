"""Where a block-wise segmentation's pixels come from: an image read by windows, never whole.

An image above the in-memory limit (``ReadLimits``) is read window by window from its TIFF:
tifffile's zarr store for tiled or stripped data (zarr decodes only the tiles or strips a
window touches), explicit file reads for uncompressed contiguous data. An image in memory
(an ordinary upload) is a source too, converted to float a window at a time.
"""
from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import tifffile

from .channels import as_channels
from .config import ReadLimits
from .imageio import (MAX_CHANNELS, TIFF_MAGIC, ImageReadError, UnitScale, alpha_sample_count, note_planes,
                      read_raw_channels, rows_as_pages, rows_as_pages_note, tiff_plane_shape, unnamed_channel_stack,
                      unnamed_channels_note)
from .planes import PlaneRequest, no_stack_note, read_planes, resolve

FOCUS_WINDOW = 1024         # side of the central window a huge Z-stack's sharpest plane is judged on
SURVEY_BYTES = 64 * 2**20   # one read of the survey pass
MAX_CHUNK_BYTES = 256 * 2**20  # a compressed strip or tile larger than this can't be read by blocks
# An upload under the pixel limit is still read lazily above this many bytes of pixels: a 40 Mpx
# stack of 8 float64 channels would take 2.5 GB decoded.
MAX_STORED_BYTES = 256 * 2**20
SCRATCH_PREFIX = ".nuclei_blocks_"  # hidden: a folder scan of the output folder passes it over


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
        self._reading = False   # a window's read under way (left set by an interrupt: ``close``)
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
        if rows_as_pages(level):  # as imageio reads it whole
            axes = "YXC"
            self.notes.append(rows_as_pages_note(shape[-1]))
        elif unnamed_channel_stack(level):  # as imageio reads it whole (a huge one read as planes had one channel)
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
        for top, bottom, left, right in windows(self.height, self.width, self.survey_block):
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
        self._reading = True
        try:
            raw = np.asarray(self._reader(index))
        except ImageReadError:
            self._reading = False
            raise
        except Exception as error:  # noqa: BLE001 - decoders fail with many types; it is the file
            self._reading = False
            raise ImageReadError(self.name, f"the file is damaged or truncated, or uses a compression this "
                                            f"installation can't decode ({_describe(error)}).") from None
        self._reading = False
        raw = np.transpose(raw, self._to_yxc)
        raw = raw[..., None] if raw.ndim == 2 else raw
        return raw[..., : raw.shape[-1] - self._alpha] if self._alpha else raw

    def read(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        return self.scale.apply(self._read_raw(top, bottom, left, right))

    def close(self) -> None:
        if self._contiguous is not None:
            self._contiguous.close()
        if self._reading:
            # An interrupt (Ctrl-C, SIGTERM) left zarr's read of a window going on in its own
            # thread: closed under it, the file failed that read, and its traceback ("I/O
            # operation on closed file") was printed after the run had stopped (a CI run). The
            # process ends moments later, and the file with it.
            return
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


def windows(height: int, width: int, block: tuple[int, int]) -> Iterator[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of reads of ``block`` covering the image, in row-major order."""
    rows, columns = block
    for top in range(0, height, rows):
        for left in range(0, width, columns):
            yield top, min(top + rows, height), left, min(left + columns, width)
