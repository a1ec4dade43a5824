"""Overlapping blocks and their labels stitched into one label image, independent of the
network: any segmenter of a window will do.

Stitching follows StarDist's ``predict_instances_big``. The image is cut into *cores* that
tile it without overlap; each block segments its core plus a *margin* of context on every
side, and keeps the objects whose centroid lies in its core. The margin is wider than any
nucleus, so a kept nucleus is whole in the block that keeps it and a nucleus that crosses
a core border is one object with one id. Objects that touch a block's context edge (not
the image's edge) are cut; they belong to a neighbour (their centroid is outside the
core), except objects larger than the margin, which are kept cut and counted
(``Stitched.oversized``).

Two blocks may see a nucleus on their border slightly differently (the network sees other
context), moving its centroid across the border: with a strict rule both blocks would
keep it, or neither. So each block keeps the objects whose centroid lies within a small
tolerance of its core, and the first version written wins: a later object more than half
on already-labelled pixels is the same nucleus again and is dropped (counted in
``duplicates``); a smaller overlap leaves it its unlabelled pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd

from .block_sources import BlockSource, windows
from .canvas import Box
from .inference import ProgressCallback
from .label_sinks import LabelSink
from .measure import COLUMNS, channel_intensities, measure_nuclei
from .memory import release_free_memory

# How far beyond its core a block keeps objects, px: more than a centroid moves between two
# blocks' versions of one nucleus (a fraction of a pixel with the network's context matched).
CENTROID_TOLERANCE = 2.0


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

    return [Block(*core_box, window(*core_box)) for core_box in windows(height, width, (core, core))]


# (the pixels of a block's window (h, w, C), the block) -> labels (h, w): 0 background, 1..n
Segmenter = Callable[[np.ndarray, Block], np.ndarray]


class Shapes(Protocol):
    """Where stitched nuclei go one block at a time (``shape_files.StreamedShapes``)."""

    def restart(self) -> None: ...

    def add(self, fresh: np.ndarray, table: pd.DataFrame, first_id: int, top: int, left: int) -> None: ...


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
                  intensities: bool = False, field: Box | None = None, shapes: Shapes | None = None) -> Stitched:
    """Segments each block's window and writes the objects it keeps into ``sink`` with ids
    in block order, after those of ``start`` (blocks already written); measures each
    object once, in the block that writes it, and with ``intensities`` every channel's
    intensity in it too. ``labelled``: the blocks' labels, in order, computed elsewhere (a
    cluster) instead of by ``segment_block``. ``field``: the field of view on a blank canvas,
    whose edge cuts nuclei as the image's does (``measure.touches_border``). ``shapes``: gets
    each nucleus as it is written (``shape_files.StreamedShapes``), anew where this stitch
    starts the labels anew (no ``start``)."""
    if shapes is not None and start is None:
        shapes.restart()
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
            if shapes is not None:
                shapes.add(fresh, table, result.count + 1, top, left)
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
