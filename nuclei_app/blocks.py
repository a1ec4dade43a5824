"""Huge images, block by block: read lazily, segment overlapping blocks, stitch the labels.

An image above the in-memory limit (``ReadLimits``) is never held whole: its TIFF is read
window by window (``block_sources``), and the labels go to a raw file on disk written and
read window by window (``label_sinks``). Memory is bounded by the block size, not the image
size. The blocks are stitched as StarDist's ``predict_instances_big`` does (``stitching``).

Whatever the pipeline decides from the whole image is decided once, for every block alike,
on one pass over the image (``overview``): the nuclear channel, the intensity stretch
(percentiles of the same strided sample that ``inference.preprocess`` takes), the
light-background inversion and the nucleus diameter. Each block then computes its part of
the whole image's network input exactly (``block_network``), so that block-wise labels
match whole-image labels.
"""
from __future__ import annotations

import math
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from .block_network import BlockJob, ImagePlan, ScaleCheck, job_segmenter, stretched_input
from .block_sources import ArraySource, BlockSource, TiffSource, upload_source
from .calibration import PixelSize
from .canvas import Box, blank_outside, canvas_note
from .channels import (AUTO, channel_note, check_channel, choose_channel_of_sample, display_rgb, intensity_image,
                       network_rgb)
from .config import PostprocessSettings
from .diameter_check import narrow_image_note, too_small_note
from .exports import FORMATS
from .image_notes import quiet_field_note
from .imageio import rgb_png_bytes, to_uint8
from .inference import ProgressCallback, Stretch
from .kinds import input_kind, network_light
from .label_sinks import ArraySink, LabelSink, scratch_sink, strided_labels, write_label_tiff
from .model import NucleiModel
from .overlay import draw_overlay
from .overview import Overview, survey
from .pipeline import MAX_NETWORK_PIXELS, REFINE_TOLERANCE, quiet_field_start, refined_stands
from .planes import PlaneRequest
from .results import image_csv, write_atomically
from .scale import ESTIMATOR_MAX_SIDE, content_corner, estimate_diameter, scale_factor
from .shape_files import StreamedShapes
from .size_search import checked_estimate, fallback_diameter
from .stitching import Block, Shapes, Stitched, plan_blocks, stitch_blocks

# Core side, px. With the bundled model (2 CPU cores) 1024 to 2048 take the same time per
# pixel (the margin's extra work is paid back by smaller arrays), and 1536 peaked lowest:
# 1.3 GB for the whole process on a 6000x6000 image, against 1.5 GB for 1024 and 2048.
DEFAULT_BLOCK = 1536
MIN_BLOCK = 64              # smaller cores would be mostly margin
# The margin must hold the largest nucleus (a few times the typical diameter) and give the
# network the context it has inside a whole image: its own tiles overlap by 64 network px.
MARGIN_DIAMETERS = 3.0
NETWORK_CONTEXT_PX = 96
# Blocks an estimated scale is checked on (see segment_source): tens of thousands of nuclei,
# whose median diameter is the whole image's within a fraction of a percent.
SCALE_CHECK_BLOCKS = 16


# Segments an image's blocks elsewhere (``cluster_blocks.ClusterBlocks``: on Dask workers):
# (job, blocks, scale check or None) -> each block's window labels, in the blocks' order; the
# nuclei the check needs are added to it as the labels arrive.
BlockRunner = Callable[[BlockJob, Sequence[Block], ScaleCheck | None], Iterator[np.ndarray]]


def segment_source(model: NucleiModel, source: BlockSource, sink: LabelSink, settings: PostprocessSettings | None,
                   diameter: float | None, channel: int | str, tta: bool | None, block_size: int,
                   progress: ProgressCallback | None = None, runner: BlockRunner | None = None,
                   intensities: bool = False,
                   shapes: Shapes | None = None) -> tuple[ImagePlan, Overview, list[Block], Stitched]:
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
    result has every channel's intensity in each nucleus (``Stitched.intensities``); ``shapes``:
    gets each nucleus as it is stitched (``stitching.stitch_blocks``)."""
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
                                 field=overview.content, shapes=shapes)

    if diameter is not None:
        plan, blocks = plan_for(float(diameter), "given", float(diameter))
        return plan, overview, blocks, stitch(plan, blocks)
    probed: dict = {}
    estimate_source = "estimated"
    if stretch.quiet and model.diameter is not None:
        estimate, estimate_source = quiet_field_start(model), "model"
    else:
        window = _diameter_window(source, overview, chosen, stretch, ESTIMATOR_MAX_SIDE)
        estimate = checked_estimate(model, window, estimate_diameter(window), probed)
        del window
    if model.diameter is None:  # no scale in the model: the image's own; the estimate sizes the margin
        plan, blocks = plan_for(None, "none", estimate)
        return plan, overview, blocks, stitch(plan, blocks)
    plan, blocks = plan_for(estimate, estimate_source, estimate)
    # The scale is checked on blocks spread over the field; every other block follows.
    checked, _ = spread(in_field(blocks, overview.content), SCALE_CHECK_BLOCKS)
    checked_ids = {id(block) for block in checked}
    others = [block for block in blocks if id(block) not in checked_ids]
    check = ScaleCheck(model.postprocess_settings)
    stitched = stitch(plan, checked, check, total=len(blocks))
    measured = check.median() or fallback_diameter(probed)
    if measured and abs(math.log(measured / estimate)) > math.log(REFINE_TOLERANCE):
        sink.clear()
        refined_plan, refined_blocks = plan_for(measured, "measured", measured)
        refined = stitch(refined_plan, refined_blocks)
        if refined_stands(refined.count, stitched.count):
            return refined_plan, overview, refined_blocks, refined
        sink.clear()  # the estimate's pass stands, as for a whole image: all its blocks again
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


def block_margin(diameter: float, factor: float) -> int:
    """Context on each side of a core: several nucleus diameters, and at least the network
    context a pixel has inside a whole image."""
    return int(math.ceil(max(MARGIN_DIAMETERS * diameter, NETWORK_CONTEXT_PX / factor)))


def block_core(block_size: int, margin: int, factor: float) -> int:
    """``block_size``, smaller where a window would exceed the network's input cap once
    resampled (tiny nuclei are enlarged): one scale for every block, whatever its size."""
    largest = int(math.sqrt(MAX_NETWORK_PIXELS) / factor) - 2 * margin
    return max(MIN_BLOCK, min(block_size, largest))


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
    kind: str = ""              # what the image looks like (kinds.input_kind, on the overview)
    quiet: bool = False         # hardly any contrast above its noise (inference.Stretch.quiet)


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
                      plane: PlaneRequest = PlaneRequest(), intensities: bool = False,
                      shape_formats: tuple[str, ...] = ()) -> BlockResult:
    """Segments a TIFF of any size block by block; writes ``{name}_labels.tif`` (tiled,
    16-bit, 32-bit beyond 65,535 nuclei; ``pixel_size`` as its resolution) and
    ``{name}_overlay.png`` (longest side <= ``overview.OVERVIEW_SIDE``) into ``out_dir``. Raises
    ImageReadError (file and reason) for a file that can't be read, ValueError for bad
    arguments. ``runner``: see ``segment_source``; ``label``: the file's name in messages;
    ``plane``: a Z-stack's plane (``planes``); ``intensities``: also ``{name}_intensities.csv``
    (``measure.channel_intensities``'s table); ``shape_formats``: also its ImageJ ROI set and
    GeoJSON (``shape_files.STREAMED_FORMATS``), written as the nuclei are stitched."""
    with TiffSource(path, label, plane) as source:
        return segment_to_files(model, source, out_dir, name, settings, diameter, channel, tta, block_size, progress,
                                runner, pixel_size, intensities, shape_formats)


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


def segment_to_files(model: NucleiModel, source: BlockSource, out_dir: str | Path, name: str,
                     settings: PostprocessSettings | None, diameter: float | None, channel: int | str,
                     tta: bool | None, block_size: int, progress: ProgressCallback | None,
                     runner: BlockRunner | None = None, pixel_size: PixelSize | None = None,
                     intensities: bool = False, shape_formats: tuple[str, ...] = ()) -> BlockResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shapes = StreamedShapes(out_dir, name, shape_formats, pixel_size)
    try:
        with scratch_sink(out_dir, source.height, source.width) as sink:
            plan, overview, blocks, stitched = segment_source(model, source, sink, settings, diameter, channel, tta,
                                                              block_size, progress, runner, intensities, shapes)
            labels_path = write_label_tiff(out_dir / f"{name}{LABELS_SUFFIX}", sink, source.height, source.width,
                                           stitched.count, pixel_size)
            small = strided_labels(sink, source.height, source.width, overview.display_stride)
        shape_paths = shapes.finish()
    finally:
        shapes.discard()   # nothing left once finished; an interrupted run's partial files
    preview = display_rgb(overview.display, plan.channel)
    overlay = draw_overlay(preview, small, style="outlines", opacity=1.0)
    written = {f"{name}{OVERVIEW_SUFFIX}": rgb_png_bytes(overlay)}
    if stitched.intensities is not None:
        written[f"{name}{INTENSITIES_SUFFIX}"] = image_csv(name, stitched.intensities)
    write_atomically(out_dir, written)
    files = {"labels": labels_path, "overlay": out_dir / f"{name}{OVERVIEW_SUFFIX}", **shape_paths}
    if stitched.intensities is not None:
        files["intensities"] = out_dir / f"{name}{INTENSITIES_SUFFIX}"
    return _result(model, source, plan, overview, blocks, stitched, channel, files=files, preview=to_uint8(preview))


def segment_array_in_blocks(model: NucleiModel, channels: np.ndarray, settings: PostprocessSettings | None = None,
                            diameter: float | None = None, channel: int | str = AUTO, tta: bool | None = None,
                            block_size: int = DEFAULT_BLOCK, progress: ProgressCallback | None = None,
                            runner: BlockRunner | None = None) -> BlockResult:
    """An image in memory ((H, W[, C]) float in [0, 1], as ``read_channels`` gives) segmented
    block by block (``--block-size``); ``result.labels`` holds the int32 labels."""
    source = ArraySource(channels)
    sink = ArraySink(source.height, source.width)
    plan, overview, blocks, stitched = segment_source(model, source, sink, settings, diameter, channel, tta,
                                                      block_size, progress, runner)
    return _result(model, source, plan, overview, blocks, stitched, channel, labels=sink.labels)


def _result(model: NucleiModel, source: BlockSource, plan: ImagePlan, overview: Overview, blocks: list[Block],
            stitched: Stitched, asked_channel: int | str, **extra) -> BlockResult:
    """The result, with its notes: how the file was read, a channel asked for that the
    automatic choice would not take (``asked_channel``; on the overview's sample: all colours
    of a fluorescence composite, a cytoplasm channel), an automatic diameter under what
    the model resolves, an image a few nuclei narrow (as every other route notes them); and
    its kind, on the overview."""
    field = plan.content or Box(0, source.height, 0, source.width)
    kind = input_kind(overview.display, plan.channel, network_light(plan.stretch, model.normalisation))
    notes = list(source.notes) + list(filter(None, [
        canvas_note(plan.content, (source.height, source.width)),
        channel_note(overview.channels_field, asked_channel),
        quiet_field_note(plan.stretch.quiet, stitched.count, plan.diameter_source != "given"),
        too_small_note(plan.diameter, plan.diameter_source, model.diameter),
        narrow_image_note(field.shape, plan.diameter, plan.diameter_source)]))
    return BlockResult(stitched.table, source.height, source.width, stitched.count, plan.diameter,
                       plan.diameter_source, plan.channel, plan.core, plan.margin, len(blocks), stitched.oversized,
                       stitched.duplicates, channels=source.channels, notes=notes,
                       intensities=stitched.intensities, content=plan.content, kind=kind, quiet=plan.stretch.quiet,
                       **extra)
