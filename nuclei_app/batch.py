"""The batch CLI's work: segment each image found (``inputs``), write the contract's files.

Everything done for one image (read, segment, measure, write) is one unit: a failure in it is
reported (file and reason), recorded in ``summary.csv`` and skipped; the run goes on and
exits 1.

Throughput: the three stages of an image run side by side on consecutive images — the next
image is read and prepared for the network (channel, percentile stretch) in one thread while
this one goes through the network, and the previous one gets its watershed, measurements,
overlay and files in another — with at most one image waiting in each, so memory stays
bounded by three images.
"""
from __future__ import annotations

import errno
import sys
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence, TextIO

import numpy as np
import pandas as pd

from .calibration import PixelSize, pixel_size_for, with_physical_sizes
from .channels import AUTO, display_rgb, intensity_image, usable_channel
from .config import IMAGE_SUFFIXES, PostprocessSettings
from .diameter_check import diameter_out_of_reach, image_notes
from .imageio import ImageReadError, read_channels
from .inputs import collect_images, output_names
from .kinds import weak_kind_note
from .measure import measure_nuclei
from .model import NucleiModel
from .overlay import draw_overlay
from .pipeline import Prediction, Segmentation, final_labels, network_input, predict_labels, segment
from .planes import PlaneRequest, ZChoice
from .progress import Progress
from .records import (HUGE_IMAGE_FORMATS, MEASUREMENT_COLUMNS, RunRecord, changed_inputs, changed_settings,
                      finished_huge, segmented_again, summary_row)
from .results import image_result_files, write_atomically
from .wording import plural


@dataclass(frozen=True)
class ImageRequest:
    """What the user asked for every image: ``diameter`` None = estimate, ``channel`` 'auto',
    ``formats`` the export formats (``exports.FORMATS``)."""
    settings: PostprocessSettings
    tta: bool | None = None
    diameter: float | None = None
    channel: int | str = AUTO
    formats: tuple[str, ...] = ("png",)
    block_size: int | None = None   # --block-size: block by block at any size (None: only huge TIFFs)
    precision: str = "float32"      # --precision: the network's arithmetic (precision.py), on every worker too
    engine: str = "auto"            # --engine: whose kernels run the network (model.py ENGINES), on every worker too
    pixel_size: float | None = None  # --pixel-size, µm (None: each file's own, where its metadata has one)
    z_plane: ZChoice = None          # --z-plane: a Z-stack's plane, 'focus' or 'max' (None: the first; planes.py)
    diameter_um: float | None = None  # --diameter in µm: each image's pixel size turns it into ``diameter`` px


def for_image(request: ImageRequest, pixel_size: PixelSize | None, model_diameter: float | None,
              notes: list[str]) -> ImageRequest:
    """The request for one image: a diameter asked in µm in this image's pixels, with a note
    where they are past what images are resized for (as the CLI warns of a diameter in px)."""
    if request.diameter_um is None:
        return request
    if pixel_size is None:
        # Not starting with "--": spreadsheets would take the status for a formula (quoted then).
        raise ValueError(f"a diameter in µm ({request.diameter_um:g} µm) needs the image's pixel size, and it has no "
                         "usable one: give the diameter in pixels, or --pixel-size UM (which sets every image's).")
    pixels = request.diameter_um / pixel_size.um
    notes += filter(None, [diameter_out_of_reach(pixels, model_diameter, f"{request.diameter_um:g} µm")])
    return replace(request, diameter=pixels)


def diameter_asked(request: ImageRequest) -> str:
    if request.diameter_um is not None:
        return f"{request.diameter_um:g} µm"
    return "auto" if request.diameter is None else f"{request.diameter:g} px"


def settings_text(request: ImageRequest, model_identity: str) -> str:
    """What decided an image's labels, as summary.csv's ``settings`` records it: a folder
    that mixes settings shows it, and --skip-existing tells when they changed."""
    settings = request.settings
    tta = "auto" if request.tta is None else ("on" if request.tta else "off")
    parts = [f"model {model_identity}", f"threshold {settings.threshold:g}",
             f"min size {f'{settings.min_size} px' if settings.min_size_in_image_pixels else 'auto'}", f"tta {tta}",
             f"diameter {diameter_asked(request)}",
             f"channel {request.channel}", f"precision {request.precision}"]
    extra = ([f"block size {request.block_size}"] if request.block_size else []) + (
        [f"pixel size {request.pixel_size:g} µm"] if request.pixel_size else []) + (
        [f"z plane {request.z_plane}"] if request.z_plane is not None else [])
    return "; ".join(parts + extra)


@dataclass
class BatchResult:
    processed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    summary: list[dict] = field(default_factory=list)
    found_nothing: bool = False  # no image file among the inputs: nothing failed, nothing done
    stopped: str = ""            # why the run stopped before its last image (the output disk is full)
    kept: int = 0                # of ``processed``: finished before and kept (--skip-existing)

    @property
    def exit_status(self) -> int:
        return 1 if self.failed or self.found_nothing or self.stopped else 0


def image_files(name: str, channels: np.ndarray, segmentation: Segmentation, request: ImageRequest,
                pixel_size: PixelSize | None = None) -> tuple[pd.DataFrame, dict[str, bytes]]:
    """One segmented image's measurements (its name first; in µm too where ``pixel_size`` is
    known) and files (contract names), from the same function as the app's downloads: the
    CLI, a Dask worker and the app give the same bytes."""
    used = segmentation.prediction.channel
    table = measure_nuclei(segmentation.labels, intensity_image(channels, used), segmentation.prediction.field)
    table = with_physical_sizes(table, pixel_size)
    overlay = (draw_overlay(display_rgb(channels, used), segmentation.labels, style="outlines", opacity=1.0)
               if "png" in request.formats else None)
    files = image_result_files(name, segmentation.labels, overlay, table, request.formats, measurements=False,
                               pixel_size=pixel_size, channels=channels)
    table.insert(0, "image", name)
    return table, files


def segment_channels(model: NucleiModel, channels: np.ndarray, request: ImageRequest, progress=None) -> Segmentation:
    return segment(model, channels, request.settings, tta=request.tta, progress=progress,
                   diameter=request.diameter, channel=request.channel)


def finish_image(out: Path, name: str, channels: np.ndarray, segmentation: Segmentation,
                 request: ImageRequest, pixel_size: PixelSize | None = None) -> pd.DataFrame:
    """Measure and write one segmented image; the table has the image's name first."""
    table, files = image_files(name, channels, segmentation, request, pixel_size)
    write_atomically(out, files)
    return table


@dataclass
class InFlight:
    """One image between its stages."""
    index: int
    path: Path
    name: str
    started: float
    channels: np.ndarray | None = None
    segmentation: Segmentation | None = None
    writing: Future | None = None
    notes: list[str] = field(default_factory=list)  # how the file was read (imageio's notes)
    pixel_size: PixelSize | None = None              # given, or the file's own; None: unknown


def read_input(path: str | Path, request: ImageRequest, notes: list[str],
               name: str | None = None) -> tuple[np.ndarray, int | str, PixelSize | None]:
    """A batch image's channels as read, the channel to segment it on (``usable_channel``) and
    the pixel size to measure it with, what the user should know about them added to ``notes``."""
    channels = read_channels(path, name=name, notes=notes, plane=plane_request(request))
    channel = usable_channel(channels, request.channel, notes)
    return channels, channel, pixel_size_for(path, request.pixel_size, notes)


def plane_request(request: ImageRequest) -> PlaneRequest:
    """A Z-stack's plane as asked, judged (for the sharpest) on the channel to be segmented."""
    return PlaneRequest(request.z_plane, request.channel)


def noted(notes: list[str]) -> str:
    """The notes as the end of an image's line."""
    return "".join(f"; note: {note}" for note in notes)


def read_and_prepare(model: NucleiModel, path: Path, request: ImageRequest):
    """Stage 1: (channels as read, the network's input and channel, and the diameter estimate
    where the diameter is not given: done here, off the network's turn; the reading notes;
    the pixel size; the diameter asked, in this image's pixels)."""
    notes: list[str] = []
    channels, channel, pixel_size = read_input(path, request, notes)
    diameter = for_image(request, pixel_size, model.diameter, notes).diameter
    return channels, network_input(model, channels, channel, with_estimate=diameter is None), notes, pixel_size, diameter


def label_and_finish(model: NucleiModel, out: Path, item: InFlight, prediction, tuned_labels,
                     request: ImageRequest, prepared: np.ndarray) -> pd.DataFrame:
    """Stage 3: the watershed (unless the diameter check did it), notes where the diameter
    looks wrong or the image is too narrow for it (``image_notes``), measurements, files."""
    item.segmentation = Segmentation(prediction, final_labels(model, prediction, tuned_labels, request.settings))
    item.notes += image_notes(model, item.channels, item.segmentation, prepared, asked_channel=request.channel)
    return finish_image(out, item.name, item.channels, item.segmentation, request, item.pixel_size)


def segment_paths(model: NucleiModel, paths: list[str | Path], out: Path, settings: PostprocessSettings | ImageRequest,
                  tta: bool | None = None, log: TextIO = sys.stderr, debug: bool = False,
                  skip_existing: bool = False) -> BatchResult:
    request = settings if isinstance(settings, ImageRequest) else ImageRequest(settings, tta)
    out.mkdir(parents=True, exist_ok=True)
    images, problems = collect_images(paths, skip_folders=(out,), notes=(input_notes := []))
    report_input_notes(input_notes, log)
    record = RunRecord(out, MEASUREMENT_COLUMNS, request.formats, resume=skip_existing,
                       settings=settings_text(request, model.identity()))
    result = BatchResult(failed=list(problems))
    names, todo = start_run(images, problems, record, result, log, paths)
    huge = {path for path in todo if is_huge(path)}
    in_blocks = [path for path in todo if request.block_size or path in huge]
    whole = [path for path in todo if not (request.block_size or path in huge)]
    with Progress(len(todo), log) as progress:
        run_blocks(model, in_blocks, huge, names, out, request, record, result, progress, debug)
        run_pipeline(model, whole, names, out, request, record, result, progress, debug, first=len(in_blocks) + 1)
    if not result.stopped:  # block-wise images went first: rows in input order again
        put_in_order(record, [names[path] for path in images], log)
    report_removed(record, log)
    finish_run(paths, images, problems, result, log)
    return result


def start_run(images: list[Path], problems: list[tuple[str, str]], record, result: BatchResult,
              log: TextIO, inputs: Sequence[str | Path] = ()) -> tuple[dict[Path, str], list[Path]]:
    """What every run does first, in-process or on a cluster: start the record with the rows
    of earlier inputs it keeps (``inputs``: the paths given, whose earlier failures it
    replaces), report and record the inputs that can't be used, count images finished before
    (--skip-existing) as done; returns each image's output name and the images still to segment."""
    names = output_names(images, record.earlier_names)
    changed = []
    if record.resume:  # huge TIFFs have files of their own: only those not yet counted read a TIFF header
        again = set(segmented_again(record.earlier, record.done, [names[path] for path in images]))
        huge = [names[path] for path in images if names[path] in again and is_huge(path)]
        record.done.update(finished_huge(record.earlier, record.present, huge, record.formats))
        changed = redo_changed(record, {names[path]: path for path in images}, log)
    todo = [path for path in images if not record.is_done(names[path])]
    if record.earlier.unreadable:
        print(f"The output folder's summary.csv or measurements.csv could not be read "
              f"({record.earlier.unreadable}); both are started afresh.", file=log)
    kept, failed = record.begin([(names[path], str(path.resolve())) for path in todo]
                                + [("", str(Path(path).resolve())) for path, _ in problems],
                                [str(Path(path).resolve()) for path in inputs], [names[path] for path in images])
    others = len(set(kept) - set(names.values()))
    if others:
        kept_images = plural(others, "image", "images")
        print(f"The output folder's summary.csv and measurements.csv keep the rows of {kept_images} "
              "segmented into it before and not in this run (their files are there).", file=log)
    if failed:
        print(f"The output folder's summary.csv keeps the rows of {plural(failed, 'input', 'inputs')} that failed "
              "before and are not in this run: run them again to retry.", file=log)
    for path, reason in problems:
        print(f"error: {path}: {reason}{'' if reason.endswith('.') else '.'} Skipped.", file=log)
        row = summary_row(path, "", status=reason)
        record.add(row)
        result.summary.append(row)
    if record.resume:
        report_resume(record, images, names, len(todo), result, log, changed)
    return names, todo


def report_removed(record, log: TextIO) -> None:
    """Says which files of other formats an earlier run wrote were removed as their images were
    segmented again (``records.stale_files``: they would not match the new results)."""
    if record.removed:
        print(f"Removed {plural(len(record.removed), 'file', 'files')} of other --formats that an earlier run wrote "
              f"for images segmented again, which would not match their new results ({a_few(record.removed)}).",
              file=log)


def redo_changed(record, files: dict[str, Path], log: TextIO) -> list[str]:
    """--skip-existing: images finished before whose input file changed since (another size or
    modification time) are segmented again, not kept with results of the file as it was;
    returns their names."""
    changed = changed_inputs(record.done, files)
    for name in changed:
        del record.done[name]
    if changed:
        print(f"--skip-existing: segmenting again {plural(len(changed), 'image', 'images')} whose file changed since "
              f"it was segmented (another size or modification time: {a_few(changed)}).", file=log)
    return changed


def put_in_order(record, names: list[str], log: TextIO) -> None:
    """The record's rows in input order, where the folder lets it: a file held open elsewhere
    (Windows: Excel, a virus scanner) or a full disk leaves them in the order images
    finished, and the run, every image recorded, still ends as it would."""
    try:
        record.put_in_order(names)
    except OSError as error:
        print(f"warning: summary.csv and measurements.csv stay in the order the images finished "
              f"({describe_write_problem(error)}).", file=log)


def report_resume(record, images: list[Path], names_of: dict[Path, str], todo: int, result: BatchResult,
                  log: TextIO, changed: Sequence[str] = ()) -> None:
    """--skip-existing: says how many images it keeps, which of them were segmented with other
    settings, and which it segments again because this run's formats are missing (``changed``:
    those it segments again because their file changed, said already); counts the kept ones
    as done."""
    names = [names_of[path] for path in images]
    lacking = [name for name in segmented_again(record.earlier, record.done, names) if name not in changed]
    if lacking:
        print(f"--skip-existing: segmenting again {plural(len(lacking), 'image', 'images')} finished before "
              f"whose files for --formats {','.join(record.formats)} are not all there ({a_few(lacking)}).",
              file=log)
    if todo == len(names):
        return
    print(f"--skip-existing: {len(names) - todo} of {len(names)} images finished before; {todo} to do.", file=log)
    other_settings = changed_settings(record.done, names, record.settings)
    if other_settings:
        print(f"--skip-existing: {plural(len(other_settings), 'image', 'images')} finished before with other "
              f"settings ({a_few(other_settings)}) are kept as they are; summary.csv's settings column says which. "
              "Run without --skip-existing to segment them again.", file=log)
    kept = [path for path in images if record.is_done(names_of[path])]
    result.summary += [record.done[names_of[path]] for path in kept]
    result.processed += [str(path) for path in kept]
    result.kept = len(kept)


def a_few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def report_input_notes(notes: list[str], log: TextIO) -> None:
    for note in notes:
        print(f"note: {note}.", file=log)


def finish_run(paths: list, images: list[Path], problems: list[tuple[str, str]], result: BatchResult,
               log: TextIO) -> None:
    if result.stopped:
        print(f"error: {result.stopped}", file=log)
    if not images and not problems:
        print(f"error: no image files found in {', '.join(map(str, paths))} "
              f"(looked for {', '.join(sorted({s.lstrip('.').upper() for s in IMAGE_SUFFIXES}))}).", file=log)
        result.found_nothing = True


def run_pipeline(model: NucleiModel, todo: list[Path], names: dict[Path, str], out: Path, request: ImageRequest,
                 record: RunRecord, result: BatchResult, progress: Progress, debug: bool, first: int = 1) -> None:
    """Reads image i+1 and writes image i-1 while image i is segmented (see the module doc).
    ``first``: the run's number for the first of them (block-wise images go first)."""
    with ThreadPoolExecutor(1, thread_name_prefix="read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="write") as writer:
        reads: deque[tuple[InFlight, Future]] = deque()
        writes: deque[InFlight] = deque()
        upcoming = iter(enumerate(todo, start=first))

        def read_ahead() -> None:
            for index, path in upcoming:
                item = InFlight(index, path, names[path], time.time())
                reads.append((item, reader.submit(read_and_prepare, model, path, request)))
                return

        read_ahead()
        try:
            while reads and not result.stopped:
                item, reading = reads.popleft()
                read_ahead()
                try:
                    item.channels, prepared, item.notes, item.pixel_size, diameter = reading.result()
                    prediction, tuned_labels = predict_labels(model, None, request.tta, progress.tiles(item.path.name),
                                                              diameter, request.channel, prepared)
                    item.writing = writer.submit(label_and_finish, model, out, item, prediction, tuned_labels,
                                                 request, prepared.field_image)
                    writes.append(item)
                except Exception as error:  # one image's failure, whatever it is, must not end the run
                    while writes:  # the images before it first: lines and rows stay in order (a user test)
                        _finished(writes.popleft(), record, result, progress, debug)
                    _failed(item, error, record, result, progress, debug)
                while len(writes) > 1:
                    _finished(writes.popleft(), record, result, progress, debug)
        finally:  # also on Ctrl-C: an image already segmented is written and recorded
            while writes:
                _finished(writes.popleft(), record, result, progress, debug)


def is_huge(path: Path) -> bool:
    from .block_sources import needs_blocks

    try:
        return needs_blocks(path)
    except (OSError, ValueError):  # unreadable: the ordinary path reports it
        return False


def run_blocks(model: NucleiModel, paths: list[Path], huge: set[Path], names: dict[Path, str], out: Path,
               request: ImageRequest, record: RunRecord, result: BatchResult, progress: Progress,
               debug: bool) -> None:
    """Images segmented block by block, one after another (each already uses every core):
    TIFFs over the in-memory limit (``huge``), read lazily, and with --block-size any image."""
    for index, path in enumerate(paths, start=1):
        if result.stopped:
            break
        item = InFlight(index, path, names[path], time.time())
        size = declared_size(path) if path in huge else ""
        progress.note(f"[block-wise] {path.name}: {size}segmenting block by block (each block's progress follows)")
        try:
            table, count, prediction, shape, item.pixel_size = segment_by_blocks(
                model, path, path in huge, item.name, out, request, progress.tiles(path.name, blocks=True),
                notes=item.notes)
        except Exception as error:  # this image only
            _failed(item, error, record, result, progress, debug)
            continue
        _succeeded(item, table, count, prediction, shape, f"[{index}/{progress.total}] [block-wise]", record, result,
                   progress, written=huge_written(request.formats) if path in huge else "")


def declared_size(path: Path) -> str:
    """'W x H px (N megapixels), ' from a TIFF's header; '' where it can't be read."""
    from .block_sources import tiff_size

    size = tiff_size(path)
    if size is None:
        return ""
    height, width = size
    return f"{width}x{height} px ({width * height / 1e6:,.0f} megapixels), "


def segment_by_blocks(model: NucleiModel, path: Path, huge: bool, name: str, out: Path, request: ImageRequest,
                      progress, runner=None, label: str | None = None, notes: list[str] | None = None):
    """(table, count, prediction summary, (height, width), pixel size). A huge TIFF writes its
    tiled label TIFF, a downsampled overlay and, where asked for, the channel intensities
    (measured block by block) and ImageJ ROIs and GeoJSON (traced as the nuclei are stitched);
    whole-image PNG labels would need every label in memory. An image that fits in memory
    gets every requested format. ``runner``:
    the blocks are segmented on a cluster (``cluster_blocks``); ``label``: the file as the
    user named it, for messages."""
    from .blocks import DEFAULT_BLOCK, segment_array_in_blocks, segment_in_blocks

    notes = [] if notes is None else notes
    options = dict(settings=request.settings, channel=request.channel, tta=request.tta,
                   block_size=request.block_size or DEFAULT_BLOCK, progress=progress, runner=runner)
    if huge:
        size_notes: list[str] = []  # after the reading's notes, as on every other route
        pixel_size = pixel_size_for(path, request.pixel_size, size_notes)
        outcome = segment_in_blocks(model, path, out, name, label=label, pixel_size=pixel_size,
                                    plane=plane_request(request), intensities="intensities" in request.formats,
                                    shape_formats=request.formats,
                                    diameter=for_image(request, pixel_size, model.diameter, size_notes).diameter,
                                    **options)
        notes += outcome.notes + size_notes + list(filter(None, [formats_left_out(request.formats)]))
    else:
        channels, options["channel"], pixel_size = read_input(path, request, notes, name=label)
        outcome = segment_array_in_blocks(model, channels,
                                          diameter=for_image(request, pixel_size, model.diameter, notes).diameter,
                                          **options)
        notes += outcome.notes
    notes += filter(None, [weak_kind_note(model.scores_for_new_images, outcome.kind, outcome.quiet, outcome.count)])
    # The result's scale and channel, in the shape the record and the log take (no probabilities kept).
    prediction = Prediction(np.zeros((0, 0, 2), np.float32), outcome.diameter, outcome.diameter_source,
                            outcome.channel, field=outcome.content, kind=outcome.kind)
    if huge:
        table = with_physical_sizes(outcome.table, pixel_size)
        table.insert(0, "image", name)
    else:
        table, files = image_files(name, channels, Segmentation(prediction, outcome.labels), request, pixel_size)
        write_atomically(out, files)
    return table, outcome.count, prediction, (outcome.height, outcome.width), pixel_size


def huge_written(formats: tuple[str, ...]) -> str:
    """The formats a huge TIFF's summary row records as written (``records.on_record_with``):
    its label TIFF whatever was asked, and of the others those it can have."""
    return ",".join(["tiff"] + [name for name in HUGE_IMAGE_FORMATS if name in formats and name != "tiff"])


def formats_left_out(formats: tuple[str, ...]) -> str | None:
    """The note that a huge image's --formats were not all written (they were left out
    without a word in a user test of --formats all)."""
    left_out = [name for name in formats if name not in HUGE_IMAGE_FORMATS]
    if not left_out:
        return None
    return (f"too large for --formats {','.join(left_out)} (PNG labels need every label in memory): it has its "
            "label TIFF (Fiji, QuPath, napari), an overview PNG and its measurements instead")


def _finished(item: InFlight, record: RunRecord, result: BatchResult, progress: Progress, debug: bool) -> None:
    try:
        table = item.writing.result()
    except Exception as error:  # measuring or writing failed: this image only
        _failed(item, error, record, result, progress, debug)
        return
    _succeeded(item, table, item.segmentation.count, item.segmentation.prediction, item.channels.shape[:2],
               f"[{item.index}/{progress.total}]", record, result, progress)


def _succeeded(item: InFlight, table: pd.DataFrame, count: int, prediction: Prediction, shape: tuple[int, int],
               tag: str, record: RunRecord, result: BatchResult, progress: Progress, written: str = "") -> None:
    """``written``: the formats written where they are not the run's (a huge TIFF's)."""
    height, width = shape
    seconds = time.time() - item.started
    row = summary_row(item.path, item.name, width=width, height=height, nuclei=count, diameter=prediction.diameter,
                      source=prediction.diameter_source, channel=prediction.channel, seconds=seconds, status="ok",
                      notes=item.notes, pixel_size=item.pixel_size, kind=prediction.kind)
    if written:
        row["formats"] = written
    put_on_record(record, result, row, table)
    result.summary.append(row)
    result.processed.append(str(item.path))
    scale = describe_scale(prediction, item.pixel_size)
    progress.done(f"{tag} {item.path.name}: {plural(count, 'nucleus', 'nuclei')}, {scale}, "
                  f"channel {prediction.channel}{noted(item.notes)} ({seconds:.1f} s)")
    item.channels = item.segmentation = None  # free the image now, not when the run ends


def _failed(item: InFlight, error: Exception, record: RunRecord, result: BatchResult, progress: Progress,
            debug: bool) -> None:
    reason = failure_status(error, debug)
    if is_disk_full(error):  # every image after it would fail the same way
        stop(result, DISK_FULL_STOP)
    row = summary_row(item.path, item.name, seconds=time.time() - item.started, status=reason)
    put_on_record(record, result, row)
    result.failed.append((str(item.path), reason))
    result.summary.append(row)
    progress.done(f"[{item.index}/{progress.total}] error: {item.path}: {reason} Skipped.")
    item.channels = item.segmentation = None


DISK_FULL_STOP = ("stopped: the output disk is full; the images not done yet are not on record. Free some space "
                  "(or choose another --out) and run the same command with --skip-existing to finish.")


def stop(result: BatchResult, reason: str) -> None:
    """No more images start; the first reason is the one told."""
    result.stopped = result.stopped or reason


def put_on_record(record, result: BatchResult, row: dict, table: pd.DataFrame | None = None) -> None:
    """``record.add``; where summary.csv or measurements.csv can't be written (the disk is
    full), the run stops: no image after it could be put on record either."""
    try:
        record.add(row, table)
    except OSError as error:
        stop(result, f"stopped: the run's record (summary.csv, measurements.csv) can't be written: "
                     f"{describe_write_problem(error)}. Run the same command with --skip-existing once "
                     "that is fixed: images not on record are done again.")


def describe_scale(prediction, pixel_size: PixelSize | None = None) -> str:
    if prediction.diameter is None:
        return "at the image's own scale"
    in_um = f" = {prediction.diameter * pixel_size.um:.1f} µm" if pixel_size else ""
    return f"diameter {prediction.diameter:.1f} px{in_um} ({prediction.diameter_source})"


# Writing the outputs can fail for reasons that are no bug: what to tell the user.
WRITE_PROBLEMS = {
    errno.ENOSPC: "the output disk is full: free some space or choose another --out",
    errno.EDQUOT: "the disk quota of the output folder is used up: free some space or choose another --out",
    errno.EACCES: "no permission to write in the output folder: choose another --out",
    errno.EPERM: "no permission to write in the output folder: choose another --out",
    errno.EROFS: "the output folder is on a read-only file system: choose another --out",
    errno.ENAMETOOLONG: "an output file name is too long for the output folder's file system: "
                        "rename the input shorter or choose a shorter --out",
}


def describe_write_problem(error: OSError) -> str:
    problem = WRITE_PROBLEMS.get(error.errno)
    return f"{problem} ({error.strerror}: {error.filename})" if problem else f"{error.strerror or error}: {error.filename}"


def is_disk_full(error: Exception) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def failure_reason(path: Path, error: Exception, debug: bool) -> str:
    """The line for the log: the file, then what went wrong."""
    return f"{path}: {failure_status(error, debug)}"


def failure_status(error: Exception, debug: bool = False) -> str:
    """What went wrong, without the file's name (summary.csv has it in its own column)."""
    if isinstance(error, ImageReadError):
        return error.problem
    if isinstance(error, (ValueError, MemoryError)):
        return str(error) or type(error).__name__
    if isinstance(error, OSError) and error.errno in WRITE_PROBLEMS:
        return describe_write_problem(error)
    if debug:
        traceback.print_exception(error)
    return (f"unexpected {type(error).__name__}: {error}. This is a bug: please report it "
            "with the file if you can (--debug shows the traceback).")

