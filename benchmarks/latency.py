"""End-to-end latency (read file -> instance labels) and peak memory of the process.

    python -m benchmarks [--model SOURCE] [--repeats N] [--tta]

Test images are the bundled dense fluorescence sample tiled to each size, saved as PNG, so
the timing includes decoding a real file. Sizes run in ascending order: peak RSS after each
size is the peak of everything up to it.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nuclei_app.config import SAMPLES_DIR
from nuclei_app.imageio import read_image, to_uint8
from nuclei_app.pipeline import segment
from nuclei_app.sources import describe, resolve_model

SIZES = (256, 512, 2048)
TARGETS_S = {512: 0.3, 2048: 5.0}
TARGET_RSS_GB = 1.5


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports kB


def make_image(size: int, folder: Path) -> Path:
    sample = read_image(SAMPLES_DIR / "images" / "fluorescence_dense.png")
    reps = (size // sample.shape[0] + 1, size // sample.shape[1] + 1, 1)
    path = folder / f"bench_{size}.png"
    Image.fromarray(to_uint8(np.tile(sample, reps)[:size, :size])).save(path)
    return path


def time_one(model, path: Path, tta: bool) -> tuple[float, int]:
    started = time.perf_counter()
    labels = segment(model, read_image(path), tta=tta).labels
    return time.perf_counter() - started, int(labels.max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model source (default: bundled)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tta", action="store_true")
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    print(f"model: {describe(model)}; tta: {args.tta}; machine: {platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} CPU cores")
    print(f"{'size':>10} {'median s':>9} {'min s':>7} {'nuclei':>7} {'peak RSS GB':>12} {'target':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for size in SIZES:
            path = make_image(size, Path(folder))
            time_one(model, path, args.tta)  # warm-up: first call traces the graph for this shape
            runs = [time_one(model, path, args.tta) for _ in range(args.repeats if size < 2048 else max(2, args.repeats // 2))]
            seconds = [r[0] for r in runs]
            target = f"<= {TARGETS_S[size]}" if size in TARGETS_S else ""
            print(f"{size:>4}x{size:<5} {statistics.median(seconds):>9.3f} {min(seconds):>7.3f} {runs[0][1]:>7} "
                  f"{peak_rss_gb():>12.2f} {target:>8}", flush=True)
    print(f"peak RSS of the process: {peak_rss_gb():.2f} GB (target <= {TARGET_RSS_GB})")
    return 0
