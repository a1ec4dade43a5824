"""The batch CLI's work: find images, segment each, write the contract's files.

A bad file is reported (file and reason) and skipped; the run goes on and exits 1.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pandas as pd

from .config import IMAGE_SUFFIXES, PostprocessSettings
from .imageio import ImageReadError, labels_png_bytes, mask_png_bytes, read_image, rgb_png_bytes
from .measure import COLUMNS, measure_nuclei
from .model import NucleiModel
from .overlay import draw_overlay
from .pipeline import segment

MEASUREMENTS_FILE = "measurements.csv"


@dataclass
class BatchResult:
    processed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

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


def segment_paths(model: NucleiModel, paths: list[str | Path], out: Path, settings: PostprocessSettings,
                  tta: bool | None = None, log: TextIO = sys.stderr) -> BatchResult:
    out.mkdir(parents=True, exist_ok=True)
    images, problems = collect_images(paths)
    result = BatchResult(failed=list(problems))
    for path, reason in problems:
        print(f"error: {path}: {reason}", file=log)
    names = output_names(images)
    tables = []
    for index, path in enumerate(images, start=1):
        started = time.time()
        try:
            image = read_image(path)
        except ImageReadError as error:
            print(f"error: {error} Skipped.", file=log)
            result.failed.append((str(path), str(error)))
            continue
        progress = _tile_progress(log, index, len(images), path.name)
        segmentation = segment(model, image, settings, tta=tta, progress=progress)
        write_outputs(out, names[path], image, segmentation.labels)
        table = measure_nuclei(segmentation.labels, image)
        table.insert(0, "image", names[path])
        tables.append(table)
        result.processed.append(str(path))
        print(f"[{index}/{len(images)}] {path.name}: {segmentation.count} nuclei ({time.time() - started:.1f} s)",
              file=log, flush=True)
    columns = ["image"] + COLUMNS
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    frame.to_csv(out / MEASUREMENTS_FILE, index=False, float_format="%.4g")
    if not images and not problems:
        print("error: no image files found (PNG, JPEG, TIFF, BMP).", file=log)
        result.failed.append(("", "no image files found"))
    return result


def _tile_progress(log: TextIO, index: int, total: int, name: str):
    """Tile-level progress for large images, only where it helps: several tiles, a terminal."""
    def report(done: int, tiles: int) -> None:
        if tiles > 1 and log.isatty():
            end = "\n" if done == tiles else ""
            print(f"\r[{index}/{total}] {name}: tile {done}/{tiles}", end=end, file=log, flush=True)
    return report
