"""Exports of a label image for other tools: a label TIFF, an ImageJ/Fiji ROI set, QuPath GeoJSON.

Coordinates (the contract shared by the ROI set and the GeoJSON): (0, 0) is the top-left
corner of the top-left pixel, x grows to the right and y downwards, so pixel (row r,
column c) covers the square [c, c+1] x [r, r+1] and has its centre at (c+0.5, r+0.5).
Each outline runs along the outside edges of its nucleus's pixels, so every vertex is an
integer corner and filling the polygon (pixel centres inside) gives back exactly the
nucleus's pixels. The outlines are traced on the corner grid, not with marching squares,
which would cut the corners of the pixels and shrink each nucleus by half a pixel.

ImageJ ROIs are single polygons: a nucleus in several pieces gets the outline of its
largest piece (most pixels), and a hole is filled (as ImageJ's own Analyze Particles does). The GeoJSON
keeps everything: holes become interior rings and pieces a MultiPolygon.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import pandas as pd
import roifile
import tifffile
from scipy import ndimage

from .calibration import PixelSize, tiff_resolution

# Format name -> the suffixes of the files it adds to an image's name. The PNGs are written
# by imageio/results/batch; export_files produces the others.
FORMATS: dict[str, tuple[str, ...]] = {
    "png": ("_labels.png", "_mask.png", "_overlay.png"),
    "tiff": ("_labels.tif",),
    "rois": ("_rois.zip",),
    "geojson": (".geojson",),
    "intensities": ("_intensities.csv",),
}
ALL = "all"
ALIASES = {"tif": "tiff", "roi": "rois"}   # the spellings people type for them
# Significant digits of the measurements' numbers, in the CSVs and the GeoJSON alike: a
# centroid 49,999.53 px into a whole-slide image keeps its hundredths, an area of 9,999,999 px
# all its digits (4 digits put nuclei 10,000 px from the origin on a 10 px grid).
CSV_FLOAT_FORMAT = "%.7g"

Ring = np.ndarray  # (n, 2) int64 corner points (x, y), closed implicitly (last != first)
NucleusMask = tuple[int, np.ndarray, tuple[int, int]]   # nucleus_masks's (label, mask, (x, y) origin)


# ---------------------------------------------------------------------------------------
# Format selection


def parse_formats(text: str) -> tuple[str, ...]:
    """'png,tiff' or 'all' (any case, spaces allowed) -> format names in FORMATS order."""
    entries = [ALIASES.get(entry, entry) for entry in (part.strip().lower() for part in text.split(",")) if entry]
    valid = ", ".join([*FORMATS, ALL])
    if not entries:
        raise ValueError(f"no export format given; choose from {valid}")
    unknown = [entry for entry in entries if entry != ALL and entry not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format {unknown[0]!r}; choose from {valid}")
    if ALL in entries:
        return tuple(FORMATS)
    return tuple(name for name in FORMATS if name in entries)


def export_files(name: str, labels: np.ndarray, table: pd.DataFrame | None,
                 formats: tuple[str, ...] | list[str], pixel_size: PixelSize | None = None) -> dict[str, bytes]:
    """File name -> bytes for the requested formats except 'png' and 'intensities' (written
    elsewhere: they need the image's pixels);
    ``pixel_size``: stored in the label TIFF, so that tools reading its calibration measure in µm."""
    writers = {
        "tiff": lambda: labels_tiff_bytes(labels, pixel_size),
        "rois": lambda: rois_zip_bytes(labels),
        "geojson": lambda: geojson_bytes(labels, table),
    }
    files = {}
    for fmt in FORMATS:
        if fmt in formats and fmt in writers:
            files[f"{name}{FORMATS[fmt][0]}"] = writers[fmt]()
    return files


# ---------------------------------------------------------------------------------------
# The three writers


def labels_tiff_bytes(labels: np.ndarray, pixel_size: PixelSize | None = None) -> bytes:
    """The label image as a deflate-compressed TIFF: uint16, or uint32 above 65,535; with
    the pixel size as its resolution where known."""
    labels = checked_labels(labels)
    top = int(labels.max(initial=0))
    if top > np.iinfo(np.uint32).max:
        raise ValueError(f"label {top} does not fit in a 32-bit TIFF")
    dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32
    buffer = io.BytesIO()
    # zlib is tifffile's name for Adobe deflate (compression 8), which Fiji, QuPath and
    # napari all read; tifffile falls back to the standard library without imagecodecs.
    tifffile.imwrite(buffer, labels.astype(dtype), photometric="minisblack", compression="zlib",
                     **tiff_resolution(pixel_size))
    return buffer.getvalue()


def rois_zip_bytes(labels: np.ndarray) -> bytes:
    """An ImageJ/Fiji ROI set: one traced polygon per nucleus, named by its label id."""
    buffer = io.BytesIO()
    # roifile.roiwrite only takes a path; this is what it does, into memory instead.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        add_rois(archive, nucleus_masks(checked_labels(labels)))
    return buffer.getvalue()


def add_rois(archive: zipfile.ZipFile, masks: Iterable[NucleusMask]) -> None:
    for label, mask, (x0, y0) in masks:
        ring = _largest_outer_ring(mask) + (x0, y0)
        roi = roifile.ImagejRoi.frompoints(ring, name=str(label))
        # TRACED is the type of ImageJ's wand and Analyze Particles outlines: a polygon
        # on pixel edges, which ImageJ fills by pixel centres like this contract.
        roi.roitype = roifile.ROI_TYPE.TRACED
        archive.writestr(fixed_time_entry(f"{label}.roi"), roi.tobytes())


def fixed_time_entry(name: str) -> zipfile.ZipInfo:
    """A ZIP entry stamped 1980-01-01, so the same nuclei always give the same bytes (the
    app's download and the CLI's file are identical, and reruns are reproducible)."""
    entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    entry.compress_type = zipfile.ZIP_DEFLATED
    return entry


def geojson_bytes(labels: np.ndarray, table: pd.DataFrame | None = None) -> bytes:
    """A QuPath-readable FeatureCollection: one detection per nucleus with its measurements."""
    buffer = io.BytesIO()
    writer = GeoJsonWriter(buffer)
    writer.add(nucleus_masks(checked_labels(labels)), table)
    writer.close()
    return buffer.getvalue()


class GeoJsonWriter:
    """A FeatureCollection written feature by feature, so that a slide's nuclei are never all
    in memory: the bytes of one ``json.dumps`` of the whole collection."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.count = stream, 0
        stream.write(b'{"type":"FeatureCollection","features":[')

    def add(self, masks: Iterable[NucleusMask], table: pd.DataFrame | None) -> None:
        measurements = _measurements_by_label(table)
        for label, mask, origin in masks:
            feature = {
                "type": "Feature",
                "geometry": _geometry(mask, origin),
                "properties": {"objectType": "detection", "name": str(label), "nucleus": label,
                               "measurements": measurements.get(label, {})},
            }
            # allow_nan=False: NaN is not JSON, and QuPath would refuse the whole file.
            text = json.dumps(feature, allow_nan=False, separators=(",", ":"))
            self.stream.write((b"," if self.count else b"") + text.encode("utf-8"))
            self.count += 1

    def close(self) -> None:
        self.stream.write(b"]}")


# ---------------------------------------------------------------------------------------
# Per-nucleus masks and measurements


def checked_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array, got {labels.ndim}-D {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must not be negative")
    return labels


def nucleus_masks(labels: np.ndarray, id_offset: int = 0,
                   offset: tuple[int, int] = (0, 0)) -> Iterator[NucleusMask]:
    """(label, mask padded by one background pixel all round, (x, y) of the mask's origin).

    The padding keeps every outline edge inside the mask; the origin maps the mask's corner
    coordinates back to the image's. ``id_offset``, ``offset`` ((x, y)): ``labels`` is a
    window of the image whose ids count from ``id_offset`` + 1 there (a block's).
    """
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:  # ids need not be consecutive
            continue
        label = index + 1
        rows, cols = box
        mask = np.zeros((rows.stop - rows.start + 2, cols.stop - cols.start + 2), dtype=bool)
        mask[1:-1, 1:-1] = labels[box] == label
        yield label + id_offset, mask, (cols.start - 1 + offset[0], rows.start - 1 + offset[1])


def _measurements_by_label(table: pd.DataFrame | None) -> dict[int, dict[str, float]]:
    """label -> {column: finite float}; QuPath measurements are numbers (touches_border 0 or
    1), missing means NaN (the µm sizes where the pixel size is unknown). Rounded to the CSVs'
    significant digits, so both files hold the same values (a float32 intensity is not
    written as 0.062745101749897 beside the CSV's 0.0627451)."""
    if table is None or len(table) == 0 or "nucleus" not in table:
        return {}
    columns = [c for c in table.columns if c != "nucleus"
               and (pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c]))]
    result = {}
    for row in table[["nucleus", *columns]].itertuples(index=False):
        values = {column: float(CSV_FLOAT_FORMAT % value) for column, value in zip(columns, row[1:])}
        result[int(row[0])] = {k: v for k, v in values.items() if math.isfinite(v)}
    return result


# ---------------------------------------------------------------------------------------
# Outlines on the corner grid


def _geometry(mask: np.ndarray, origin: tuple[int, int]) -> dict:
    """GeoJSON Polygon (or MultiPolygon for a nucleus in pieces) with holes as inner rings."""
    # Pieces are 4-connected: two pixels touching only at a corner become two polygons that
    # touch at a point, which is valid, whereas one ring through that point twice is not.
    pieces, count = ndimage.label(mask)
    sizes = ndimage.sum_labels(mask, pieces, index=np.arange(1, count + 1))
    polygons = []
    for piece in np.argsort(-sizes, kind="stable") + 1:  # largest first
        rings = _rings(pieces == piece)
        outer = [ring for ring in rings if _signed_area(ring) > 0]
        holes = [ring for ring in rings if _signed_area(ring) < 0]
        polygons.append([_closed(ring + origin) for ring in outer + holes])
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def _largest_outer_ring(mask: np.ndarray) -> Ring:
    """The outline of the piece with the most pixels, ignoring its holes and other pieces.

    Pieces are 8-connected here: one ImageJ ring may pass through a corner twice, so two
    pixels touching at a corner stay in the same ROI.
    """
    pieces, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count > 1:
        sizes = np.bincount(pieces.ravel())[1:]
        mask = pieces == np.argmax(sizes) + 1
    outer = [ring for ring in _rings(mask) if _signed_area(ring) > 0]
    return max(outer, key=_signed_area)


def _closed(ring: Ring) -> list[list[int]]:
    """GeoJSON rings repeat their first point at the end."""
    points = ring.tolist()
    return points + points[:1]


def _signed_area(ring: Ring) -> float:
    """Shoelace area: positive for the outside of a nucleus, negative around a hole."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _boundary_edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit edges between a nucleus pixel and a background pixel, as (start, end) corners.

    Each edge is directed with the nucleus on its left (taking x right and y up, as the
    shoelace formula does), so outer rings come out counter-clockwise and holes clockwise,
    as GeoJSON (RFC 7946) asks. The mask must have a background border.
    """
    m = mask.astype(np.int8)
    down = m[1:, :] - m[:-1, :]  # +1: pixel below starts the nucleus, at y = i + 1
    right = m[:, 1:] - m[:, :-1]  # +1: pixel to the right starts the nucleus, at x = j + 1
    starts, ends = [], []
    for step, (ys, xs) in ((+1, np.nonzero(down == 1)), (-1, np.nonzero(down == -1))):
        y = ys + 1
        x0, x1 = (xs, xs + 1) if step == 1 else (xs + 1, xs)  # top edges go +x, bottom -x
        starts.append(np.stack([x0, y], axis=1))
        ends.append(np.stack([x1, y], axis=1))
    for step, (ys, xs) in ((+1, np.nonzero(right == 1)), (-1, np.nonzero(right == -1))):
        x = xs + 1
        y0, y1 = (ys + 1, ys) if step == 1 else (ys, ys + 1)  # left edges go -y, right +y
        starts.append(np.stack([x, y0], axis=1))
        ends.append(np.stack([x, y1], axis=1))
    return np.concatenate(starts), np.concatenate(ends)


def _rings(mask: np.ndarray) -> list[Ring]:
    """Closed outlines of a padded mask along pixel edges, collinear points removed.

    At a corner where two nucleus pixels touch diagonally (and two background pixels
    do too), four edges meet; the ring turns right there (clockwise), which links the two
    nucleus pixels. Within one 4-connected piece that is what keeps every ring simple:
    the two background pixels are then always on different rings (outside and a hole).
    """
    starts, ends = _boundary_edges(mask)
    width = mask.shape[1] + 1
    start_ids = starts[:, 1] * width + starts[:, 0]
    end_ids = ends[:, 1] * width + ends[:, 0]
    outgoing: dict[int, list[int]] = {}
    for edge, vertex in enumerate(start_ids.tolist()):
        outgoing.setdefault(vertex, []).append(edge)
    directions = (ends - starts).tolist()

    used = np.zeros(len(starts), dtype=bool)
    rings = []
    for first in range(len(starts)):
        if used[first]:
            continue
        path, edge = [], first
        while not used[edge]:
            used[edge] = True
            path.append(edge)
            candidates = outgoing[int(end_ids[edge])]
            if len(candidates) == 1:
                edge = candidates[0]
            else:
                dx, dy = directions[edge]
                edge = next(e for e in candidates if directions[e] == [dy, -dx])  # clockwise
        rings.append(_corners_only(starts[path]))
    return rings


def _corners_only(points: Ring) -> Ring:
    """Drop points where the ring runs straight on: only the turns are vertices."""
    steps = np.roll(points, -1, axis=0) - points
    turns = np.any(steps != np.roll(steps, 1, axis=0), axis=1)
    return points[turns].astype(np.int64)
