"""Per-nucleus measurements, one row per label, with scikit-image regionprops' definitions.

Every column is computed for all nuclei at once (``np.bincount`` over the labelled pixels,
shifted comparisons for the perimeter, the convex hulls' sides as envelopes of all nuclei's
row ends together) instead of region by region: the per-region machinery cost more than
the arithmetic.
``tests/test_measure.py`` checks every column against ``regionprops_table``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .canvas import Box
from .channelwise import channel_mean

COLUMNS = ["nucleus", "area_px", "centroid_y", "centroid_x", "perimeter_px", "diameter_px", "major_axis_px",
           "minor_axis_px", "eccentricity", "solidity", "orientation_rad", "mean_intensity", "max_intensity",
           "integrated_intensity", "circularity", "touches_border"]


def intensity_channel(image: np.ndarray) -> np.ndarray:
    """Mean over colour channels of the image as read (in [0, 1]; 16-bit keeps its scale)."""
    return channel_mean(image) if image.ndim == 3 else image


def measure_nuclei(labels: np.ndarray, image: np.ndarray, field: Box | None = None) -> pd.DataFrame:
    """A table with one row per nucleus, in label order; empty (with columns) if none.
    ``field``: the field of view, where the image is one on a blank canvas."""
    if labels.max(initial=0) == 0:
        return pd.DataFrame(columns=COLUMNS)
    pixels = labelled_pixels(np.asarray(labels))
    area, ids = pixels.area, pixels.ids
    values = np.asarray(intensity_channel(image))[pixels.rows, pixels.columns].astype(np.float64)

    areas, perimeter = area[ids].astype(np.float64), perimeters(pixels)[ids]
    columns = {
        "nucleus": ids,
        "area_px": areas,
        "centroid_y": pixels.mean_of(pixels.rows),
        "centroid_x": pixels.mean_of(pixels.columns),
        "perimeter_px": perimeter,
        "diameter_px": np.sqrt(4.0 * areas / math.pi),
        "solidity": areas / convex_areas(pixels),
        "mean_intensity": pixels.mean_of(values),
        "max_intensity": pixels.max_of(values),
        # The sum over the nucleus (CellProfiler's IntegratedIntensity): with a DNA stain, the
        # DNA content, whose histogram tells the cell-cycle phases (2N, 4N) apart.
        "integrated_intensity": pixels.total(values)[ids],
        **shape_moments(pixels),
        "circularity": circularity(areas, perimeter),
        "touches_border": touches_border(labels, ids, field),
    }
    # One frame from finished columns: pandas' per-column insertion cost more than the sums.
    return pd.DataFrame({name: columns[name] for name in COLUMNS})


def channel_intensities(labels: np.ndarray, channels: np.ndarray) -> pd.DataFrame:
    """Every channel's intensity in each nucleus: ``mean_cK``, ``max_cK`` and ``integrated_cK``
    for channel K (0 first), one row per nucleus in label order. For the markers beside the
    nuclear stain (a proliferation marker, a transcription factor moving into the nucleus),
    what the nuclei are segmented for. Channels as read: 0-1 over the file's range."""
    channels = channels[..., None] if channels.ndim == 2 else channels
    names = [f"{stat}_c{c}" for c in range(channels.shape[-1]) for stat in ("mean", "max", "integrated")]
    if labels.max(initial=0) == 0:
        return pd.DataFrame(columns=["nucleus", *names])
    pixels = labelled_pixels(np.asarray(labels))
    columns = {"nucleus": pixels.ids}
    for c in range(channels.shape[-1]):
        values = channels[..., c][pixels.rows, pixels.columns].astype(np.float64)
        columns.update({f"mean_c{c}": pixels.mean_of(values), f"max_c{c}": pixels.max_of(values),
                        f"integrated_c{c}": pixels.total(values)[pixels.ids]})
    return pd.DataFrame(columns)


def circularity(area: np.ndarray, perimeter: np.ndarray) -> np.ndarray:
    """4*pi*area/perimeter^2: 1 for a disk, lower for irregular or elongated nuclei (1 where
    the perimeter is 0: a single pixel)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.minimum(4 * np.pi * area / perimeter**2, 1.0)
    return np.where(perimeter == 0, 1.0, value)


@dataclass(frozen=True)
class LabelledPixels:
    """Every labelled pixel once, in row-major order: what all the measurements sum over."""
    labels: np.ndarray
    rows: np.ndarray
    columns: np.ndarray
    owner: np.ndarray    # each pixel's label
    area: np.ndarray     # pixels per label id (index = id)
    ids: np.ndarray      # the ids present, ascending

    @property
    def size(self) -> int:
        return len(self.area)

    def total(self, values=None) -> np.ndarray:
        """Sum of ``values`` (default 1) per label id."""
        return np.bincount(self.owner, values, minlength=self.size)

    def mean_of(self, values) -> np.ndarray:
        """Mean of ``values`` over each present nucleus, in ``ids`` order."""
        return self.total(values)[self.ids] / self.area[self.ids]

    @cached_property
    def by_owner(self) -> np.ndarray:
        """The pixels' order grouped by label id (ascending), row-major within each."""
        return np.argsort(self.owner, kind="stable")

    def max_of(self, values: np.ndarray) -> np.ndarray:
        """Maximum of ``values`` over each present nucleus, in ``ids`` order (10x faster than
        ``ndimage.maximum`` with an index)."""
        starts = np.r_[0, np.cumsum(self.area[self.ids])[:-1]]
        return np.maximum.reduceat(values[self.by_owner], starts)


def labelled_pixels(labels: np.ndarray) -> LabelledPixels:
    rows, columns = np.nonzero(labels)
    owner = labels[rows, columns]
    area = np.bincount(owner, minlength=int(owner.max()) + 1)
    return LabelledPixels(labels, rows, columns, owner, area, np.flatnonzero(area))


# skimage.measure.perimeter's weights for the codes of a border pixel (1 + 2 per 4-neighbour
# and 10 per diagonal neighbour that is on the border too): straight runs count 1, diagonal
# steps sqrt(2), corners between the two (1 + sqrt(2)) / 2.
PERIMETER_WEIGHTS = np.zeros(50)
PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
PERIMETER_WEIGHTS[[21, 33]] = math.sqrt(2)
PERIMETER_WEIGHTS[[13, 23]] = (1 + math.sqrt(2)) / 2
NEIGHBOURS = [((dy, dx), 2 if dy == 0 or dx == 0 else 10) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def perimeters(pixels: LabelledPixels) -> np.ndarray:
    """regionprops' perimeter (``skimage.measure.perimeter``, 4-connected border) of every
    label at once (index = id): a nucleus's border pixels are its pixels with a 4-neighbour
    outside it; each is coded by which of its 8 neighbours are border pixels of the same nucleus."""
    labels, rows, columns, owner, size = pixels.labels, pixels.rows, pixels.columns, pixels.owner, pixels.size
    # The labelled pixels' bounding box, one background pixel around it (beyond the image's
    # edge too, as regionprops pads): no image-sized copies however far out the nuclei lie.
    top, left = int(rows.min()), int(columns.min())
    padded = np.pad(labels[top:int(rows.max()) + 1, left:int(columns.max()) + 1], 1)
    y, x = rows - top + 1, columns - left + 1
    border = np.zeros(padded.shape, bool)
    on_border = np.zeros(len(owner), bool)
    for (dy, dx), _ in NEIGHBOURS:
        if dy == 0 or dx == 0:
            on_border |= padded[y + dy, x + dx] != owner
    border[y[on_border], x[on_border]] = True
    y, x, mine = y[on_border], x[on_border], owner[on_border]
    code = np.ones(len(mine), np.int64)
    for (dy, dx), weight in NEIGHBOURS:
        code += weight * (border[y + dy, x + dx] & (padded[y + dy, x + dx] == mine))
    histogram = np.bincount(mine * 50 + code, minlength=size * 50).reshape(size, 50)
    return histogram @ PERIMETER_WEIGHTS


def convex_areas(pixels: LabelledPixels) -> np.ndarray:
    """Pixels of each nucleus's convex hull, in ``ids`` order, as regionprops' ``area_convex``
    counts them (``convex_hull_image``: the hull of every pixel's four edge midpoints, pixel
    centres inside or on it), for all nuclei at once. Only each row's leftmost and rightmost
    pixels can be hull vertices; the hull between its top and bottom is bounded by the left
    side's convex envelope and the right side's, each found for all nuclei together
    (``outer_envelope``), and its pixels are counted row by row between them: 5x faster than
    one qhull call per nucleus (25 -> 5 ms on a 512x512 field of 133 nuclei)."""
    order = pixels.by_owner
    owner, rows, columns = pixels.owner[order], pixels.rows[order], pixels.columns[order]
    # Runs of one nucleus's pixels in one row, ordered by nucleus then row.
    starts = np.flatnonzero(np.r_[True, (owner[1:] != owner[:-1]) | (rows[1:] != rows[:-1])])
    run_owner, run_row = owner[starts], rows[starts].astype(np.float64)
    left = np.minimum.reduceat(columns, starts).astype(np.float64)
    right = np.maximum.reduceat(columns, starts).astype(np.float64)
    row_owner, row = _rows_spanned(run_owner, run_row)
    # Outwardness u = -x on the left side, x on the right: both sides are concave envelopes of u(y).
    low = -_envelope_at(outer_envelope(*_side_points(run_owner, run_row, -left)), row_owner, row)
    high = _envelope_at(outer_envelope(*_side_points(run_owner, run_row, right)), row_owner, row)
    inside = np.maximum(np.floor(high + EPSILON) - np.ceil(low - EPSILON) + 1, 0)
    return np.bincount(row_owner, inside, minlength=pixels.size)[pixels.ids]


EPSILON = 1e-9  # pixel centres on the hull's edge count, as convex_hull_image's include_borders


def _side_points(owner: np.ndarray, row: np.ndarray, outward: np.ndarray):
    """One side's candidate hull points (owner, y, u) for runs whose extreme pixel lies at
    u = ``outward`` (-x on the left, x on the right): its outer edge midpoint (u + 0.5 at the
    row) and its top and bottom edge midpoints (u at row -+ 0.5); of the points at one height
    the outermost, sorted by owner then height."""
    owners = np.concatenate([owner, owner, owner])
    y = np.concatenate([row, row - 0.5, row + 0.5])
    u = np.concatenate([outward + 0.5, outward, outward])
    order = np.lexsort((-u, y, owners))
    owners, y, u = owners[order], y[order], u[order]
    first = np.r_[True, (owners[1:] != owners[:-1]) | (y[1:] != y[:-1])]
    return owners[first], y[first], u[first]


def outer_envelope(owner: np.ndarray, y: np.ndarray, u: np.ndarray):
    """The vertices of each owner's concave envelope (least concave majorant) of its points
    u(y), all owners at once: points strictly below the chord of their two neighbours lie
    strictly inside the envelope, so all of them can go at once; repeated until none is.
    Coordinates are multiples of 0.5, so the comparison is exact."""
    while len(y) > 2:
        inner = (owner[:-2] == owner[1:-1]) & (owner[2:] == owner[1:-1])
        below = inner & ((u[1:-1] - u[:-2]) * (y[2:] - y[:-2]) < (u[2:] - u[:-2]) * (y[1:-1] - y[:-2]))
        if not below.any():
            break
        keep = np.r_[True, ~below, True]
        owner, y, u = owner[keep], y[keep], u[keep]
    return owner, y, u


def _rows_spanned(run_owner: np.ndarray, run_row: np.ndarray):
    """Every row from each nucleus's top row to its bottom one (gaps included), with its owner."""
    first = np.flatnonzero(np.r_[True, run_owner[1:] != run_owner[:-1]])
    last = np.r_[first[1:], len(run_owner)] - 1
    top, heights = run_row[first], (run_row[last] - run_row[first]).astype(np.int64) + 1
    row_owner = np.repeat(run_owner[first], heights)
    offsets = np.arange(len(row_owner)) - np.repeat(np.cumsum(heights) - heights, heights)
    return row_owner, np.repeat(top, heights) + offsets


def _envelope_at(envelope, owner: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each owner's envelope (vertices sorted by owner, then y) at heights strictly inside its span."""
    vertex_owner, vertex_y, vertex_u = envelope
    span = float(max(vertex_y.max(), y.max()) + 2)
    keys = vertex_owner * span + (vertex_y + 1)
    at = np.searchsorted(keys, owner * span + (y + 1), side="right") - 1
    y0, y1, u0, u1 = vertex_y[at], vertex_y[at + 1], vertex_u[at], vertex_u[at + 1]
    return u0 + (u1 - u0) * (y - y0) / (y1 - y0)


def shape_moments(pixels: LabelledPixels) -> dict[str, np.ndarray]:
    """Axis lengths, eccentricity and orientation of every nucleus from its central second
    moments, summed for all nuclei in one pass (``np.bincount``) rather than region by region:
    regionprops' per-region moments took half of the measuring time. The formulas are
    regionprops' (inertia tensor [[mu02, -mu11], [-mu11, mu20]] / mu00, axes 4 sqrt(eigenvalue))."""
    rows, columns, owner, ids, total = pixels.rows, pixels.columns, pixels.owner, pixels.ids, pixels.total
    count = np.maximum(total(), 1)
    # Two passes: offsets from each nucleus's own centroid, so no precision is lost to large
    # image coordinates (E[x^2] - E[x]^2 cancels badly 10,000 px from the origin).
    dy = rows - (total(rows) / count)[owner]
    dx = columns - (total(columns) / count)[owner]
    mu20, mu02, mu11 = ((total(v) / count)[ids] for v in (dy * dy, dx * dx, dy * dx))
    # Rounding noise snapped to 0: a symmetric nucleus gets regionprops' exact answer wherever
    # it lies (its orientation would otherwise flip between +-pi/2 with the last bit).
    noise = 1e-12 * (mu20 + mu02 + 1.0)
    mu11 = np.where(np.abs(mu11) < noise, 0.0, mu11)
    mu02 = np.where(np.abs(mu02 - mu20) < noise, mu20, mu02)
    a, b, c = mu02, -mu11, mu20                         # regionprops' inertia tensor [[a, b], [b, c]]
    root = np.sqrt(((a - c) / 2) ** 2 + b**2)
    major = np.clip((a + c) / 2 + root, 0, None)
    minor = np.clip((a + c) / 2 - root, 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        eccentricity = np.where(major == 0, 0.0, np.sqrt(np.clip(1 - minor / major, 0, 1)))
    orientation = np.where(a - c == 0, np.where(b < 0, np.pi / 4, -np.pi / 4), 0.5 * np.arctan2(-2 * b, c - a))
    return {"major_axis_px": 4 * np.sqrt(major), "minor_axis_px": 4 * np.sqrt(minor),
            "eccentricity": eccentricity, "orientation_rad": orientation}


def touches_border(labels: np.ndarray, ids: np.ndarray, field: Box | None = None) -> np.ndarray:
    """Nuclei cut by the image edge, or by the edge of the ``field`` of view (in ``labels``'
    coordinates; the part of it inside them) on a blank canvas: their area and shape are not
    the whole nucleus."""
    if field is not None:
        labels = labels[max(0, field.top):max(0, field.bottom), max(0, field.left):max(0, field.right)]
        if labels.size == 0:
            return np.zeros(len(ids), bool)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(ids, edge)


def summary(table: pd.DataFrame, pixels: int) -> dict:
    """Count, coverage and size statistics for the headline numbers, from the measurements
    alone (a large image's labels are never in memory): coverage is the nuclei's total area
    over ``pixels`` (the image's, or its field of view's on a blank canvas), which is exactly
    the labelled fraction of it. No nuclei: the sizes are NaN, not 0 px (a table showed 0)."""
    areas = table["area_px"].to_numpy(dtype=float) if len(table) else np.zeros(0)
    return {
        "count": int(len(table)),
        "coverage": float(areas.sum() / pixels) if pixels else 0.0,
        "mean_area": float(areas.mean()) if areas.size else math.nan,
        "median_area": float(np.median(areas)) if areas.size else math.nan,
        "std_area": float(areas.std()) if areas.size else math.nan,
    }
