"""The batch CLI's work: find images, segment each, write the contract's files.

Everything done for one image (read, segment, measure, write) is one unit: a failure in it is
reported (file and reason), recorded in ``summary.csv`` and skipped; the run goes on and
exits 1.
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pandas as pd

from .channels import AUTO, display_rgb
from .config import IMAGE_SUFFIXES, PostprocessSettings
from .imageio import ImageReadError, labels_png_bytes, mask_png_bytes, read_channels, rgb_png_bytes
from .measure import COLUMNS, measure_nuclei
from .model import NucleiModel
from .overlay import draw_overlay
from .pipeline import Segmentation, segment

MEASUREMENTS_FILE = "measurements.csv"
SUMMARY_FILE = "summary.csv"
SUMMARY_COLUMNS = ["image", "file", "width", "height", "nuclei", "diameter_px", "diameter_source", "channel",
                   "seconds", "status"]


@dataclass(frozen=True)
class ImageRequest:
    """What the user asked for every image: ``diameter`` None = estimate, ``channel`` 'auto'."""
    settings: PostprocessSettings
    tta: bool | None = None
    diameter: float | None = None
    channel: int | str = AUTO


@dataclass
class BatchResult:
    processed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    summary: list[dict] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0


def collect_images(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files from files and folders (recursive); missing paths are reported."""
    found, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            problems.append((str(path), "no such file or folder"))
    return found, problems


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


def write_outputs(out: Path, name: str, image, labels) -> None:
    (out / f"{name}_labels.png").write_bytes(labels_png_bytes(labels))
    (out / f"{name}_mask.png").write_bytes(mask_png_bytes(labels))
    (out / f"{name}_overlay.png").write_bytes(rgb_png_bytes(draw_overlay(image, labels, style="outlines", opacity=1.0)))


def process_image(model: NucleiModel, path: Path, name: str, out: Path, request: ImageRequest,
                  progress=None) -> tuple[Segmentation, pd.DataFrame, tuple[int, int]]:
    """Read, segment, write and measure one image; raises on any failure."""
    channels = read_channels(path)
    segmentation = segment(model, channels, request.settings, tta=request.tta, progress=progress,
                           diameter=request.diameter, channel=request.channel)
    used = segmentation.prediction.channel
    write_outputs(out, name, display_rgb(channels, used), segmentation.labels)
    intensity = channels[..., used] if isinstance(used, int) else channels
    table = measure_nuclei(segmentation.labels, intensity)
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
        print(f"[{index}/{len(images)}] {path.name}: {segmentation.count} nuclei, {describe_scale(prediction)}, "
              f"channel {prediction.channel} ({seconds:.1f} s)", file=log, flush=True)
    columns = ["image"] + COLUMNS
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    frame.to_csv(out / MEASUREMENTS_FILE, index=False, float_format="%.4g")
    pd.DataFrame(result.summary, columns=SUMMARY_COLUMNS).to_csv(out / SUMMARY_FILE, index=False, float_format="%.4g")
    if not images and not problems:
        print("error: no image files found (PNG, JPEG, TIFF, BMP).", file=log)
        result.failed.append(("", "no image files found"))
    return result


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
