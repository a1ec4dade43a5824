"""A block-wise image's ROI set and GeoJSON, written nucleus by nucleus as its blocks are
stitched: the files ``exports`` makes of a whole label image, never holding one."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np
import pandas as pd

from .calibration import PixelSize, with_physical_sizes
from .exports import FORMATS, GeoJsonWriter, add_rois, checked_labels, nucleus_masks
from .results import partial_path


# The formats a block-wise image's nuclei are written to as they are stitched (StreamedShapes).
STREAMED_FORMATS = ("rois", "geojson")


class StreamedShapes:
    """A block-wise image's ROI set and GeoJSON, written nucleus by nucleus as the blocks are
    stitched (``stitching.stitch_blocks``), each nucleus from the pixels its block writes: the
    files the whole image's labels give, without the whole label image in memory (a trial:
    a slide got neither, and QuPath reads GeoJSON). Under temporary names until ``finish``."""

    def __init__(self, folder: Path, name: str, formats: Iterable[str], pixel_size: PixelSize | None = None):
        self.paths = {fmt: Path(folder) / f"{name}{FORMATS[fmt][0]}" for fmt in STREAMED_FORMATS if fmt in formats}
        self.pixel_size = pixel_size
        self._files: list[BinaryIO] = []
        self.geojson: GeoJsonWriter | None = None
        self.rois: zipfile.ZipFile | None = None
        self.restart()

    def restart(self) -> None:
        """Empty again: the blocks are labelled anew (``segment_source`` at another diameter)."""
        self._close()
        if "geojson" in self.paths:
            self.geojson = GeoJsonWriter(self._open(self.paths["geojson"]))
        if "rois" in self.paths:
            self.rois = zipfile.ZipFile(self._open(self.paths["rois"]), "w", compression=zipfile.ZIP_DEFLATED)

    def add(self, fresh: np.ndarray, table: pd.DataFrame, first_id: int, top: int, left: int) -> None:
        """One block's new nuclei: ``fresh`` their pixels in the block's window (1..k), ``table``
        their measurements with image ids and coordinates, numbered from ``first_id``."""
        if not self.paths:   # neither asked for: no tracing
            return
        masks = list(nucleus_masks(checked_labels(fresh), first_id - 1, (left, top)))
        if self.geojson is not None:
            self.geojson.add(masks, with_physical_sizes(table, self.pixel_size))
        if self.rois is not None:
            add_rois(self.rois, masks)

    def finish(self) -> dict[str, Path]:
        if self.geojson is not None:
            self.geojson.close()
        self._close()
        for path in self.paths.values():
            os.replace(partial_path(path), path)
        return dict(self.paths)

    def discard(self) -> None:
        self._close()
        for path in self.paths.values():
            partial_path(path).unlink(missing_ok=True)

    def _open(self, path: Path) -> BinaryIO:
        handle = open(partial_path(path), "wb")
        self._files.append(handle)
        return handle

    def _close(self) -> None:
        if self.rois is not None:
            self.rois.close()   # writes the ZIP's directory, before its file is closed
        for handle in self._files:
            handle.close()
        self._files, self.geojson, self.rois = [], None, None
