"""End-to-end latency (read file -> instance labels) and peak memory of the process.

    python -m benchmarks [--model SOURCE] [--repeats N] [--tta]

Test images are the bundled dense fluorescence sample tiled to each size, saved as PNG, so
the timing includes decoding a real file. Each size runs twice: with the automatic diameter
(estimate, and a second pass where the nuclei found disagree), and with ``--diameter`` given
as the sample's ground-truth median diameter. Sizes run in ascending order: peak RSS after
each size is the peak of everything up to it.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nuclei_app.config import SAMPLES_DIR
from nuclei_app.imageio import read_image, to_uint8
from nuclei_app.label_files import read_labels
from nuclei_app.machine import describe_machine
from nuclei_app.pipeline import segment
from nuclei_app.scale import median_diameter
from nuclei_app.sources import describe, resolve_model

SIZES = (256, 512, 2048)
TARGETS_S = {("auto", 512): 0.4, ("auto", 2048): 8.0, ("given", 512): 0.3}
TARGET_RSS_GB = 1.5


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports kB


def make_image(size: int, folder: Path) -> Path:
    sample = read_image(SAMPLES_DIR / "images" / "fluorescence_dense.png")
    reps = (size // sample.shape[0] + 1, size // sample.shape[1] + 1, 1)
    path = folder / f"bench_{size}.png"
    Image.fromarray(to_uint8(np.tile(sample, reps)[:size, :size])).save(path)
    return path


TTA_NAMES = {None: "default (this fluorescence sample: one pass)", True: "every image", False: "off"}


def time_one(model, path: Path, tta: bool | None, diameter: float | None) -> tuple[float, int, float | None]:
    started = time.perf_counter()
    result = segment(model, read_image(path), tta=tta, diameter=diameter)
    return time.perf_counter() - started, result.count, result.prediction.diameter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model source (default: bundled)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="flip every image / none (default: the model's default, flips for light backgrounds)")
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    print(f"model: {describe(model)}; tta: {TTA_NAMES[args.tta]}; machine: {describe_machine()}")
    true_diameter = median_diameter(read_labels(SAMPLES_DIR / "ground_truth" / "fluorescence_dense.png"))
    print(f"sample's true median diameter: {true_diameter:.1f} px")
    print(f"{'size':>10} {'diameter':>9} {'median s':>9} {'min s':>7} {'nuclei':>7} {'used px':>8} {'peak RSS GB':>12} {'target':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for size in SIZES:
            path = make_image(size, Path(folder))
            for mode, diameter in (("auto", None), ("given", true_diameter)):
                time_one(model, path, args.tta, diameter)  # warm-up: first call traces the graph for this shape
                repeats = args.repeats if size < 2048 else max(2, args.repeats // 2)
                runs = [time_one(model, path, args.tta, diameter) for _ in range(repeats)]
                seconds = [r[0] for r in runs]
                target = f"<= {TARGETS_S[mode, size]}" if (mode, size) in TARGETS_S else ""
                used = f"{runs[0][2]:.1f}" if runs[0][2] else "-"
                print(f"{size:>4}x{size:<5} {mode:>9} {statistics.median(seconds):>9.3f} {min(seconds):>7.3f} "
                      f"{runs[0][1]:>7} {used:>8} {peak_rss_gb():>12.2f} {target:>8}", flush=True)
    print(f"peak RSS of the process: {peak_rss_gb():.2f} GB (target <= {TARGET_RSS_GB})")
    return 0
