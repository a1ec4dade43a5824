"""Where block-wise labels go: the whole image's labels, written and read back by windows
(in memory for ordinary images, in a sparse raw file on disk for huge ones), and the tiled
label TIFF streamed from them.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import tifffile

from .block_sources import SCRATCH_PREFIX, ContiguousArray, windows
from .calibration import PixelSize, tiff_resolution
from .results import partial_path

LABEL_TILE = 512            # tile side of the label TIFF


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


def label_dtype(count: int) -> np.dtype:
    if count > np.iinfo(np.uint32).max:
        raise ValueError(f"{count} nuclei do not fit in a 32-bit label TIFF.")
    return np.dtype(np.uint16 if count <= np.iinfo(np.uint16).max else np.uint32)


def write_label_tiff(path: Path, sink: LabelSink, height: int, width: int, count: int,
                     pixel_size: PixelSize | None = None) -> Path:
    """A tiled, deflate-compressed label TIFF streamed tile by tile from ``sink``, with its
    reduced levels (``pyramid_strides``) as SubIFDs, as pyramidal OME-TIFFs keep them: napari
    and tifffile show a slide's labels zoomed out without reading them whole (a trial: a
    144-megapixel label TIFF of one level). Written under a temporary name first, so that an
    interrupted run leaves no truncated file."""
    dtype = label_dtype(count)
    strides = pyramid_strides(height, width)
    partial = partial_path(path)
    try:
        # zlib is Adobe deflate, which Fiji, QuPath and napari read (as exports.labels_tiff_bytes).
        # The reduced levels add up to a third of the full one's bytes.
        with tifffile.TiffWriter(partial, bigtiff=height * width * dtype.itemsize * 4 / 3 > 2**32 - 2**25) as tif:
            for stride in (1, *strides):
                shape = (-(-height // stride), -(-width // stride))
                tiles = (strided_window(sink, window, stride, height, width).astype(dtype)
                         for window in windows(*shape, (LABEL_TILE, LABEL_TILE)))
                level = {"subifds": len(strides)} if stride == 1 else {"subfiletype": 1}
                scaled = PixelSize(pixel_size.um * stride, pixel_size.source) if pixel_size else None
                tif.write(tiles, shape=shape, dtype=dtype, tile=(LABEL_TILE, LABEL_TILE), photometric="minisblack",
                          compression="zlib", **level, **tiff_resolution(scaled))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def pyramid_strides(height: int, width: int) -> list[int]:
    """The reduced levels' strides (2, 4, ...): halved while the longer side keeps two tiles
    (1024 px) or more, so the smallest level's is 1024-2047 px; none for a smaller image."""
    strides, stride = [], 2
    while max(height, width) // stride >= 2 * LABEL_TILE:
        strides.append(stride)
        stride *= 2
    return strides


def strided_window(sink: LabelSink, window: tuple[int, int, int, int], stride: int, height: int,
                   width: int) -> np.ndarray:
    """labels[::stride, ::stride] over one tile of a reduced level (its coordinates), read a
    row at a time: nearest neighbours, so every value is a nucleus's own id (no blend of two)."""
    top, bottom, left, right = window
    if stride == 1:
        return sink.read(top, bottom, left, right)
    rows = range(top * stride, min(bottom * stride, height), stride)
    return np.stack([sink.read(row, row + 1, left * stride, min(right * stride, width))[0, ::stride] for row in rows])


def strided_labels(sink: LabelSink, height: int, width: int, stride: int) -> np.ndarray:
    """labels[::stride, ::stride], one row read at a time."""
    return strided_window(sink, (0, -(-height // stride), 0, -(-width // stride)), stride, height, width)
