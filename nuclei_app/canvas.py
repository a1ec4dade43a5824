"""A field of view pasted onto a blank canvas: where the image's content is.

Mosaic tiles, slide exports and padded crops put the field in a corner or the middle of a
larger area of one value (black, white, grey). Left in, the canvas takes part in every
decision made on the whole image: it sets the stretch's percentiles, makes a light field on
black read as fluorescence (and a black canvas becomes a bright slab once inverted), and
draws the automatic diameter's windows onto nothing. ``content_box`` finds the field, so
those decisions are made on it; the canvas is then set to the network's background.

The canvas is the rows and columns at the image's edges that hold one value only: the value
of its first such outer line (top, bottom, left, right). The content box is the bounding box
of every pixel of another value. It is taken for a field of view only where it looks like
one, so that a background clipped to one value (black fluorescence background, saturated
white brightfield) is not taken for a canvas around a clump of nuclei, whose median is then
a nucleus and the image reads as the opposite kind:
- at least ``MIN_FIELD_SIDE`` px on each side;
- the canvas's value covers under ``MAX_CANVAS_VALUE_SHARE`` of it. Of DSB2018's 664 images,
  the only six with such edges (embryo fields in black margins) hold that black in 20-49 % of
  their box, and are left as they are; a real field holds 0 % of its extreme values in half
  of them, 1 % or less in nine in ten. At 5 %, a review's dense grid of touching discs on a
  background of exact black (4.2 % of their box) was taken for a light field on a canvas
  and inverted.
What else lies on the canvas stays there: marks (a scale bar, a label: ``CanvasSurvey``'s
grid), a lossy file's halo around the field (``without_halo``), a frame drawn around it
(``inside_frame``). ``field_box`` puts these together for both routes: ``content_box`` on an
image in memory, ``overview.survey`` on one read part by part.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from .sampling import percentile_sample, percentile_stride, side_stride

NETWORK_BACKGROUND = 0.0  # preprocessed input: nuclei bright on dark
MIN_FIELD_SIDE = 32
MAX_CANVAS_VALUE_SHARE = 0.01
# Where other pixels lie is also kept on a grid of at most this many cells a side, and cells
# of at least MIN_CELL px: a scale bar or a label on the canvas (a separate group of cells,
# under ``MAX_MARK_SHARE`` of the largest group's cells) is left on the canvas, not taken into
# the field's box. (With 1 px cells, a review's line of the canvas's value across a field
# near its edge cut the strip beyond it off as a mark.)
GRID_SIDE = 512
MIN_CELL = 8
MAX_MARK_SHARE = 0.05
MAX_FRAME = 64  # px: the widest frame around a field looked for
HALO_DEPTH = 16  # px: JPEG's largest block (16x16, colour subsampled), a compression halo's reach
HALO_SHARE = 1 / 3


@dataclass(frozen=True)
class Box:
    """Rows top:bottom and columns left:right of an image (full resolution)."""
    top: int
    bottom: int
    left: int
    right: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left

    @property
    def empty(self) -> bool:
        return self.top >= self.bottom or self.left >= self.right

    def intersection(self, other: Box) -> Box:
        """The part of this box inside ``other`` (``empty`` where they do not meet)."""
        return Box(max(self.top, other.top), min(self.bottom, other.bottom), max(self.left, other.left),
                   min(self.right, other.right))

    def shifted(self, rows: int, columns: int) -> Box:
        return Box(self.top + rows, self.bottom + rows, self.left + columns, self.right + columns)

    def strided(self, stride: int, shape: tuple[int, ...]) -> Box:
        """This box on ``image[::stride, ::stride]`` (of ``shape``): the sampled pixels inside
        it, and at least one row and column where the box falls between samples."""
        def span(start: int, stop: int, length: int) -> tuple[int, int]:
            first = min(-(-start // stride), length - 1)
            return first, max(first + 1, min(-(-stop // stride), length))
        top, bottom = span(self.top, self.bottom, shape[0])
        left, right = span(self.left, self.right, shape[1])
        return Box(top, bottom, left, right)


def content_box(image: np.ndarray) -> Box | None:
    """The box around the image's field of view inside a canvas of one value (marks on the
    canvas left out), None where there is no canvas (no outer row or column of one value),
    nothing but canvas, or a box that does not look like a field (module docstring)."""
    image = np.asarray(image)
    if image.ndim < 2 or min(image.shape[:2]) < 2:
        return None
    survey = CanvasSurvey(image[0], image[-1], image.shape[0])
    # The outer columns first: most images have no outer line of one value, and the whole
    # image is then compared with no value at all.
    survey.add(image[:, :1], 0, 0, counted=False)
    survey.add(image[:, -1:], 0, image.shape[1] - 1, counted=False)
    survey.add(image, 0, 0)
    return field_box(survey, lambda top, bottom, left, right: image[top:bottom, left:right],
                     percentile_sample(image))


Reader = Callable[[int, int, int, int], np.ndarray]  # (top, bottom, left, right) -> the image's pixels


def field_box(survey: CanvasSurvey, read: Reader, sample: np.ndarray) -> Box | None:
    """The field of view the survey found, None where it found none or what it found does not
    look like a field: the bounding box, without a compression halo around the field, if it
    looks like a field (``looks_like_field``), without a frame around it. ``read``: the
    image's pixels (the box's sides are read again); ``sample``: its percentile sample."""
    found = survey.bounding()
    if found is None:
        return None
    box, value = found
    if min(box.shape) < MIN_FIELD_SIDE:
        return None  # a speck on a blank image (and its sides would be no lines deep)
    stride = percentile_stride(survey.height, survey.width)
    box = without_halo(read, box, value, sample, stride)
    if not looks_like_field(box, value, sample, stride):
        return None
    return inside_frame(read, box, sample, stride)


def canvas_note(box: Box | None, shape: tuple[int, ...]) -> str | None:
    """What the user should know where a blank canvas was left out (None where there was none):
    where the field is, so that a background taken for a canvas can be seen for what it is."""
    if box is None:
        return None
    share = 1.0 - box.shape[0] * box.shape[1] / (shape[0] * shape[1])
    return (f"the field of view, rows {box.top}-{box.bottom - 1} and columns {box.left}-{box.right - 1}, lies on a "
            f"blank canvas of one value ({share:.0%} of the image): the canvas was left out and holds no nuclei")


def crop(image: np.ndarray, box: Box | None) -> np.ndarray:
    return image if box is None else image[box.slices]


def crop_sample(sample: np.ndarray, box: Box | None, stride: int) -> np.ndarray:
    """The part of ``sample`` (``image[::stride, ::stride]``) inside ``box`` (the image's)."""
    return sample if box is None else sample[box.strided(stride, sample.shape).slices]


def blank_outside(array: np.ndarray, box: Box | None) -> np.ndarray:
    """Sets ``array``'s pixels outside ``box`` to the network's background, in place."""
    if box is None:
        return array
    array[:box.top] = NETWORK_BACKGROUND
    array[box.bottom:] = NETWORK_BACKGROUND
    array[box.top:box.bottom, :box.left] = NETWORK_BACKGROUND
    array[box.top:box.bottom, box.right:] = NETWORK_BACKGROUND
    return array


# The outer lines in the order the canvas value is taken from, and the corner each starts at.
OUTER_LINES = (("top", "top-left"), ("bottom", "bottom-left"), ("left", "top-left"), ("right", "top-right"))


class CanvasSurvey:
    """``content_box``, gathered over an image read part by part (``overview.survey``): for the
    value of each corner an outer line starts at, which rows and columns hold another value.

    It starts from the image's top and bottom rows (cheap to read in any layout); a value is
    no longer followed once every outer line it could fill is seen to hold another, for most
    images after the first band of parts."""

    def __init__(self, top_row: np.ndarray, bottom_row: np.ndarray, height: int):
        corners = {"top-left": top_row[0], "top-right": top_row[-1], "bottom-left": bottom_row[0]}
        self.height, self.width = height, top_row.shape[0]
        self._values: list[np.ndarray] = []
        self._line_value: dict[str, int] = {}  # each outer line: the index of the value it would hold
        for line, corner in OUTER_LINES:
            same = [k for k, known in enumerate(self._values) if np.array_equal(known, corners[corner])]
            if not same:
                self._values.append(np.asarray(corners[corner]))
            self._line_value[line] = same[0] if same else len(self._values) - 1
        self._rows = [np.zeros(height, bool) for _ in self._values]
        self._columns = [np.zeros(top_row.shape[0], bool) for _ in self._values]
        self._cell = max(MIN_CELL, side_stride((height, self.width), GRID_SIDE))
        grid_shape = (-(-height // self._cell), -(-self.width // self._cell))
        self._cells = [np.zeros(grid_shape, np.int64) for _ in self._values]  # pixels of another value
        self.add(top_row[None], 0, 0, counted=False)
        self.add(bottom_row[None], height - 1, 0, counted=False)

    def add(self, part: np.ndarray, top: int, left: int, counted: bool = True) -> None:
        """``part`` of the image, at (``top``, ``left``); ``counted``: its pixels are counted in
        the grid (once each: the pass over every part, not the outer lines read ahead of it)."""
        for k in self._followed():
            differs = part != self._values[k]
            differs = differs.any(axis=-1) if differs.ndim == 3 else differs
            self._rows[k][top:top + part.shape[0]] |= differs.any(axis=1)
            self._columns[k][left:left + part.shape[1]] |= differs.any(axis=0)
            if counted:
                self._mark_cells(self._cells[k], differs, top, left)

    def _mark_cells(self, cells: np.ndarray, differs: np.ndarray, top: int, left: int) -> None:
        rows = (top + np.arange(differs.shape[0])) // self._cell
        columns = (left + np.arange(differs.shape[1])) // self._cell
        row_starts, column_starts = _run_starts(rows), _run_starts(columns)
        counts = np.add.reduceat(np.add.reduceat(differs.astype(np.int64), row_starts, axis=0), column_starts, axis=1)
        cells[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] += counts

    @property
    def following(self) -> int:
        """How many values are still compared with each part."""
        return len(self._followed())

    def _followed(self) -> list[int]:
        return sorted({k for line, k in self._line_value.items() if self._uniform(line)})

    def _uniform(self, line: str) -> bool:
        """Whether ``line`` still holds its corner's value alone, as far as read."""
        k = self._line_value[line]
        rows, columns = self._rows[k], self._columns[k]
        return not {"top": rows[0], "bottom": rows[-1], "left": columns[0], "right": columns[-1]}[line]

    def bounding(self) -> tuple[Box, np.ndarray] | None:
        """(the bounding box of the pixels of another value than the canvas's, marks on the
        canvas left out; the canvas's value), None without a canvas or with nothing else."""
        for line, _ in OUTER_LINES:
            if self._uniform(line):
                k = self._line_value[line]
                box = self._bounding(k)
                return None if box is None else (box, self._values[k])
        return None

    def _bounding(self, k: int) -> Box | None:
        """The bounding box of the pixels not of value ``k``, marks on the canvas left out."""
        cells, rows, columns = self._cells[k], self._rows[k], self._columns[k]
        groups, count = ndimage.label(cells > 0, np.ones((3, 3), bool))
        if count == 0:
            return None  # one value everywhere: no field to find
        sizes = np.bincount(groups.ravel(), weights=cells.ravel())[1:]  # in pixels
        kept = np.isin(groups, 1 + np.flatnonzero(sizes >= MAX_MARK_SHARE * sizes.max()))
        held_rows, held_columns = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
        # The kept cells' rows and columns of pixels, narrowed to those that hold another value.
        top, bottom = held_rows[0] * self._cell, (held_rows[-1] + 1) * self._cell
        left, right = held_columns[0] * self._cell, (held_columns[-1] + 1) * self._cell
        inside_rows = top + np.flatnonzero(rows[top:bottom])
        inside_columns = left + np.flatnonzero(columns[left:right])
        return Box(int(inside_rows[0]), int(inside_rows[-1]) + 1, int(inside_columns[0]), int(inside_columns[-1]) + 1)


def looks_like_field(box: Box, value: np.ndarray, sample: np.ndarray, stride: int) -> bool:
    """At least ``MIN_FIELD_SIDE`` px a side, and ``value`` (the canvas's, or a frame's) in
    under ``MAX_CANVAS_VALUE_SHARE`` of it, counted on ``sample`` (``image[::stride, ::stride]``)."""
    if min(box.shape) < MIN_FIELD_SIDE:
        return False
    same = crop_sample(sample, box, stride) == value
    same = same.all(axis=-1) if same.ndim == 3 else same
    return float(same.mean()) < MAX_CANVAS_VALUE_SHARE


def inside_frame(read: Reader, box: Box, sample: np.ndarray,
                 stride: int) -> Box:
    """``box`` without a frame of one value drawn along all four of its sides (a figure panel's
    border: a user test's brightfield field with a 2 px black frame on white was segmented
    at 7 px). ``read(top, bottom, left, right)``: the image's pixels; the four sides are read
    in bands of at most ``MAX_FRAME`` px, and only where the top and bottom rows are of one
    value alike."""
    top_row = read(box.top, box.top + 1, box.left, box.right)[0]
    value = top_row[0]
    if not _all_equal(top_row, value) or not _all_equal(read(box.bottom - 1, box.bottom, box.left, box.right)[0], value):
        return box
    widths = {side: _leading_lines(band == value) for side, band in _side_bands(read, box, MAX_FRAME).items()}
    if min(widths.values()) == 0:
        return box
    inner = _peeled(box, widths)
    return inner if looks_like_field(inner, value, sample, stride) else box


def without_halo(read: Reader, box: Box, value: np.ndarray, sample: np.ndarray, stride: int) -> Box:
    """``box`` without the lines along its sides that are all near the canvas's ``value``: the
    halo lossy compression leaves around a field on a canvas. A user test's JPEG canvases
    differed from their value by up to 12 levels of 255 in a band up to ``HALO_DEPTH`` px
    wide, and by up to 54 in the line or two next to the field: the box was found that much
    too large, or not at all (a brightfield field on white, whose box was then 5.08 % white).
    Near is under ``HALO_SHARE`` of the way from the canvas's value to the field's median
    (per channel), so a field's own edge rows count as halo only where they are as dark (or
    as light) as that. The line next to a light field on black is a third of the way (54
    of 255): left in, it reads as a row of small bright nuclei once inverted (a JPEG'd H&E
    field 2 px too large was segmented at 16.6 px against 23.6). The price: a review's field
    (median 0.8) with dim nuclei (0.2) in a dark band along its edge lost them."""
    value = np.asarray(value, np.float64)  # integer pixels would wrap round in the differences
    median = np.median(crop_sample(sample, box, stride).reshape(-1, value.size), axis=0)
    tolerance = HALO_SHARE * np.abs(median - value).reshape(value.shape)
    bands = _side_bands(read, box, HALO_DEPTH)
    return _peeled(box, {side: _leading_lines(np.abs(band - value) < tolerance) for side, band in bands.items()})


def _side_bands(read: Reader, box: Box, depth: int) -> dict[str, np.ndarray]:
    """The box's four sides, ``depth`` lines deep (a quarter of the box at most), each as
    (line, pixel along it[, channel]) from the outermost line in."""
    depth = min(depth, min(box.shape) // 4)
    return {"top": read(box.top, box.top + depth, box.left, box.right),
            "bottom": read(box.bottom - depth, box.bottom, box.left, box.right)[::-1],
            "left": read(box.top, box.bottom, box.left, box.left + depth).swapaxes(0, 1),
            "right": read(box.top, box.bottom, box.right - depth, box.right).swapaxes(0, 1)[::-1]}


def _peeled(box: Box, widths: dict[str, int]) -> Box:
    return Box(box.top + widths["top"], box.bottom - widths["bottom"], box.left + widths["left"],
               box.right - widths["right"])


def _all_equal(line: np.ndarray, value: np.ndarray) -> bool:
    return bool(np.all(line == value))


def _leading_lines(matches: np.ndarray) -> int:
    """How many of the first lines (axis 0) match at every pixel."""
    if matches.shape[0] == 0:
        return 0
    whole = matches.reshape(matches.shape[0], -1).all(axis=1)
    return int(np.argmin(whole)) if not whole.all() else len(whole)


def _run_starts(indices: np.ndarray) -> np.ndarray:
    """Where each run of equal values in a non-decreasing ``indices`` starts."""
    return np.flatnonzero(np.r_[True, indices[1:] != indices[:-1]])
