"""The batch CLI's work: find images, segment each, write the contract's files.

Everything done for one image (read, segment, measure, write) is one unit: a failure in it is
reported (file and reason), recorded in ``summary.csv`` and skipped; the run goes on and
exits 1.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pandas as pd

from .channels import AUTO, display_rgb
from .config import IMAGE_SUFFIXES, PostprocessSettings
from .imageio import ImageReadError, read_channels
from .measure import COLUMNS, measure_nuclei
from .model import NucleiModel
from .overlay import draw_overlay
from .pipeline import Segmentation, segment
from .results import csv_bytes, image_result_files

MEASUREMENTS_FILE = "measurements.csv"
SUMMARY_FILE = "summary.csv"
SUMMARY_COLUMNS = ["image", "file", "width", "height", "nuclei", "diameter_px", "diameter_source", "channel",
                   "seconds", "status"]


@dataclass(frozen=True)
class ImageRequest:
    """What the user asked for every image: ``diameter`` None = estimate, ``channel`` 'auto',
    ``formats`` the export formats (``exports.FORMATS``)."""
    settings: PostprocessSettings
    tta: bool | None = None
    diameter: float | None = None
    channel: int | str = AUTO
    formats: tuple[str, ...] = ("png",)


@dataclass
class BatchResult:
    processed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    summary: list[dict] = field(default_factory=list)
    found_nothing: bool = False  # no image file among the inputs: nothing failed, nothing done

    @property
    def exit_status(self) -> int:
        return 1 if self.failed or self.found_nothing else 0


def collect_images(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files from files and folders (recursive, image suffixes in any case), and the
    (path, reason) of what can't be used: missing paths, broken links, unreadable folders,
    file names that are not valid UTF-8 (summary.csv could not hold them).

    Folders are walked with ``os.walk``, following links to folders but entering each real
    folder once, so a link to a parent folder (a loop) or a second way to the same data
    neither hangs the scan nor segments an image twice. Hidden files and folders (".", such
    as macOS's "._name.png" metadata files) are not images and are passed over."""
    found, problems, entered = [], [], set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images, trouble = _scan_folder(path, entered)
            found += images
            problems += trouble
        elif path.is_file():
            found.append(path)
        elif path.is_symlink():
            problems.append((str(path), _broken_link_reason(path)))
        else:
            problems.append((str(path), "no such file or folder"))
    problems += [(str(p), "the file name is not valid UTF-8 text (it was probably written on a system with "
                          "another encoding); rename the file.") for p in found if not _is_utf8(p)]
    found = _first_of_each_file([p for p in found if _is_utf8(p)])
    return found, [(_printable(path), reason) for path, reason in problems]


def _scan_folder(folder: Path, entered: set[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``folder``, skipping real folders already in ``entered`` (updated)."""
    found, problems = [], []

    def unreadable(error: OSError) -> None:
        problems.append((error.filename or str(folder), f"the folder could not be read ({error.strerror or error})."))

    for root, folders, files in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(root)
        if real in entered:  # a symlink loop, or another link to a folder already searched
            folders[:] = []
            continue
        entered.add(real)
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(root, name)
            if path.is_file():
                found.append(path)
            else:  # a link to a file that moved, or to itself
                problems.append((str(path), _broken_link_reason(path)))
    return sorted(found), problems


def _first_of_each_file(paths: list[Path]) -> list[Path]:
    """Without repeats: a file named twice (directly, or by a link) is segmented once."""
    seen, unique = set(), []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def _broken_link_reason(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return f"broken symbolic link to {target}: the file it points to does not exist. Fix or remove the link."


def _is_utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of a POSIX file name, kept as surrogates
        return False
    return True


def _printable(path: str) -> str:
    """The path with undecodable bytes as \\xNN escapes: printable, and storable in summary.csv."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def output_names(images: list[Path]) -> dict[Path, str]:
    """NAME for each input; inputs sharing a file name get their parent folders prefixed."""
    names, used = {}, set()
    for image in images:
        name, parents = image.stem, list(image.resolve().parents)
        for parent in parents:
            if name not in used:
                break
            name = f"{parent.name}_{name}"
        used.add(name)
        names[image] = name
    return names


def write_outputs(out: Path, name: str, image, labels, table: pd.DataFrame, formats: tuple[str, ...] = ("png",)) -> None:
    """The image's files, from the same function as the app's downloads (byte-identical)."""
    overlay = draw_overlay(image, labels, style="outlines", opacity=1.0) if "png" in formats else None
    for file_name, data in image_result_files(name, labels, overlay, table, formats, measurements=False).items():
        (out / file_name).write_bytes(data)


def process_image(model: NucleiModel, path: Path, name: str, out: Path, request: ImageRequest,
                  progress=None) -> tuple[Segmentation, pd.DataFrame, tuple[int, int]]:
    """Read, segment, write and measure one image; raises on any failure."""
    channels = read_channels(path)
    segmentation = segment(model, channels, request.settings, tta=request.tta, progress=progress,
                           diameter=request.diameter, channel=request.channel)
    used = segmentation.prediction.channel
    intensity = channels[..., used] if isinstance(used, int) else channels
    table = measure_nuclei(segmentation.labels, intensity)
    write_outputs(out, name, display_rgb(channels, used), segmentation.labels, table, request.formats)
    table.insert(0, "image", name)
    return segmentation, table, channels.shape[:2]


def segment_paths(model: NucleiModel, paths: list[str | Path], out: Path, settings: PostprocessSettings | ImageRequest,
                  tta: bool | None = None, log: TextIO = sys.stderr, debug: bool = False) -> BatchResult:
    request = settings if isinstance(settings, ImageRequest) else ImageRequest(settings, tta)
    out.mkdir(parents=True, exist_ok=True)
    images, problems = collect_images(paths)
    result = BatchResult(failed=list(problems))
    for path, reason in problems:
        print(f"error: {path}: {reason}", file=log)
        result.summary.append(summary_row(path, "", status=reason))
    names = output_names(images)
    tables = []
    for index, path in enumerate(images, start=1):
        started = time.time()
        try:
            progress = _tile_progress(log, index, len(images), path.name)
            segmentation, table, (height, width) = process_image(model, path, names[path], out, request, progress)
        except Exception as error:  # one image's failure, whatever it is, must not end the run
            reason = failure_reason(path, error, debug)
            print(f"error: {reason} Skipped.", file=log, flush=True)
            result.failed.append((str(path), reason))
            result.summary.append(summary_row(path, names[path], seconds=time.time() - started, status=reason))
            continue
        tables.append(table)
        result.processed.append(str(path))
        prediction = segmentation.prediction
        seconds = time.time() - started
        result.summary.append(summary_row(path, names[path], width=width, height=height, nuclei=segmentation.count,
                                          diameter=prediction.diameter, source=prediction.diameter_source,
                                          channel=prediction.channel, seconds=seconds, status="ok"))
        print(f"[{index}/{len(images)}] {path.name}: {plural(segmentation.count, 'nucleus', 'nuclei')}, "
              f"{describe_scale(prediction)}, "
              f"channel {prediction.channel} ({seconds:.1f} s)", file=log, flush=True)
    columns = ["image"] + COLUMNS
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    (out / MEASUREMENTS_FILE).write_bytes(csv_bytes(frame))
    (out / SUMMARY_FILE).write_bytes(csv_bytes(pd.DataFrame(result.summary, columns=SUMMARY_COLUMNS)))
    if not images and not problems:
        print(f"error: no image files found in {', '.join(map(str, paths))} "
              f"(looked for {', '.join(sorted({s.lstrip('.').upper() for s in IMAGE_SUFFIXES}))}).", file=log)
        result.found_nothing = True
    return result


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def describe_scale(prediction) -> str:
    if prediction.diameter is None:
        return "at the image's own scale"
    return f"diameter {prediction.diameter:.1f} px ({prediction.diameter_source})"


def failure_reason(path: Path, error: Exception, debug: bool) -> str:
    if isinstance(error, ImageReadError):
        return str(error)
    if isinstance(error, (ValueError, MemoryError)):
        return f"{path}: {error}"
    if debug:
        traceback.print_exception(error)
    return (f"{path}: unexpected {type(error).__name__}: {error}. This is a bug: please report it "
            "with the file if you can (--debug shows the traceback).")


def summary_row(path, name: str, width=None, height=None, nuclei=None, diameter=None, source="", channel="",
                seconds=None, status="ok") -> dict:
    return dict(zip(SUMMARY_COLUMNS, [name, str(path), width, height, nuclei, diameter, source, channel,
                                      None if seconds is None else round(seconds, 2), status]))


def _tile_progress(log: TextIO, index: int, total: int, name: str):
    """Tile-level progress for large images, only where it helps: several tiles, a terminal."""
    def report(done: int, tiles: int) -> None:
        if tiles > 1 and log.isatty():
            end = "\n" if done == tiles else ""
            print(f"\r[{index}/{total}] {name}: tile {done}/{tiles}", end=end, file=log, flush=True)
    return report
