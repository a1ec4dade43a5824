"""Huge images block by block: peak memory and time on a 20000x20000 TIFF, and agreement
with whole-image segmentation on a 6000x6000 one.

    python -m benchmarks.huge_image [--size 20000] [--compare-size 6000] [--block-size 1536]

The test image is a field of synthetic fluorescent nuclei (many touching), written as a
tiled TIFF tile by tile, so that neither the benchmark nor the generator ever holds it
whole. The huge image is segmented first, so that the peak resident memory printed (VmHWM,
the kernel's high-water mark) is the block-wise run's; the comparison, which segments a
whole 6000x6000 image in memory, comes after. Its nuclei are larger (COMPARE_DIAMETER), so
that the whole-image path segments them at their own scale (see compare_run).
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from nuclei_app.exports import parse_formats

TARGET_RSS_GB = 2.0
COMPARE_DIAMETER = 40.0
CELLS_PER_KEY = 64  # cells of one grid row drawn from one random stream


def peak_rss_gb() -> float:
    """The process's resident-memory high-water mark (VmHWM) so far."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


@dataclass(frozen=True)
class NucleusField:
    """Nuclei on a jittered grid, defined on the whole plane: any window renders on its own,
    and windows rendered apart join without a seam.

    Each nucleus is an ellipse with a domed profile (bright centre, dim rim), so that two
    touching nuclei meet in a valley, as stained nuclei do."""
    diameter: float = 24.0
    seed: int = 0
    spacing: float = 1.1   # grid cell, in diameters: neighbours often touch
    fill: float = 0.85     # share of cells holding a nucleus

    @property
    def cell(self) -> float:
        return self.spacing * self.diameter

    def nuclei(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """(n, 6) rows of (centre y, centre x, semi-axis a, semi-axis b, angle, brightness)
        for the nuclei whose extent may reach the window."""
        reach = 0.75 * self.diameter
        rows = range(math.floor((top - reach) / self.cell), math.floor((bottom + reach) / self.cell) + 1)
        first, last = math.floor((left - reach) / self.cell), math.floor((right + reach) / self.cell)
        parts = []
        for row in rows:
            for key in range(first // CELLS_PER_KEY, last // CELLS_PER_KEY + 1):
                cells = _cell_row(self, row, key)
                columns = key * CELLS_PER_KEY + np.arange(CELLS_PER_KEY)
                parts.append(cells[(columns >= first) & (columns <= last) & (cells[:, 5] > 0)])
        return np.concatenate(parts) if parts else np.zeros((0, 6))

    def render(self, top: int, bottom: int, left: int, right: int, noise_seed: int = 0) -> np.ndarray:
        """uint8 (bottom - top, right - left): dark background, bright nuclei, sensor noise."""
        image = np.zeros((bottom - top, right - left), np.float32)
        for cy, cx, a, b, angle, brightness in self.nuclei(top, bottom, left, right):
            dome, box = _dome(cy - top, cx - left, a, b, angle, image.shape)
            if dome is not None:
                np.maximum(image[box], brightness * dome, out=image[box])
        noise = np.random.default_rng((self.seed, noise_seed, top, left)).normal(0.0, 0.025, image.shape)
        return (np.clip(0.06 + 0.8 * image + noise, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)

    def count(self, height: int, width: int) -> int:
        """Nuclei whose centre lies in the image: the true count."""
        centres = self.nuclei(0, height, 0, width)
        return int(np.count_nonzero((centres[:, 0] >= 0) & (centres[:, 0] < height)
                                    & (centres[:, 1] >= 0) & (centres[:, 1] < width)))


@lru_cache(maxsize=4096)
def _cell_row(field: NucleusField, row: int, key: int) -> np.ndarray:
    """Parameters of CELLS_PER_KEY cells of one grid row; brightness 0 for an empty cell."""
    rng = np.random.default_rng((field.seed, row + 2**31, key + 2**31))
    n, cell, radius = CELLS_PER_KEY, field.cell, field.diameter / 2
    columns = key * n + np.arange(n)
    cy = (row + 0.5 + rng.uniform(-0.25, 0.25, n)) * cell
    cx = (columns + 0.5 + rng.uniform(-0.25, 0.25, n)) * cell
    size = radius * rng.uniform(0.85, 1.15, n)
    elongation = rng.uniform(1.0, 1.3, n)
    a, b = size * np.sqrt(elongation), size / np.sqrt(elongation)
    angle = rng.uniform(0, np.pi, n)
    brightness = rng.uniform(0.5, 1.0, n) * (rng.random(n) < field.fill)
    return np.stack([cy, cx, a, b, angle, brightness], axis=1)


def _dome(cy: float, cx: float, a: float, b: float, angle: float, shape: tuple[int, int]):
    """(sqrt(1 - r^2) inside the ellipse, the slice of the image it covers) or (None, None)."""
    reach = int(math.ceil(max(a, b))) + 1
    y0, y1 = max(0, int(cy) - reach), min(shape[0], int(cy) + reach + 1)
    x0, x1 = max(0, int(cx) - reach), min(shape[1], int(cx) + reach + 1)
    if y0 >= y1 or x0 >= x1:
        return None, None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    u, v = dy * math.cos(angle) + dx * math.sin(angle), -dy * math.sin(angle) + dx * math.cos(angle)
    r2 = (u / a) ** 2 + (v / b) ** 2
    return np.sqrt(np.clip(1.0 - r2, 0.0, None)).astype(np.float32), (slice(y0, y1), slice(x0, x1))


def write_field_tiff(path: Path, field: NucleusField, height: int, width: int, tile: int = 512) -> Path:
    """The field as a tiled, deflate-compressed 8-bit TIFF, rendered one tile at a time."""
    tiles = (field.render(top, min(top + tile, height), left, min(left + tile, width))
             for top in range(0, height, tile) for left in range(0, width, tile))
    tifffile.imwrite(path, tiles, shape=(height, width), dtype=np.uint8, tile=(tile, tile),
                     photometric="minisblack", compression="zlib", bigtiff=height * width > 2**31)
    return path


def matched_iou(reference: np.ndarray, candidate: np.ndarray) -> tuple[int, float]:
    """(objects matched one-to-one at IoU > 0.5, their mean IoU), from the pairs that
    overlap only (a dense IoU matrix of 60,000 x 60,000 objects would not fit)."""
    both = (reference > 0) & (candidate > 0)
    scale = int(candidate.max(initial=0)) + 1
    pairs, overlap = np.unique(reference[both].astype(np.int64) * scale + candidate[both], return_counts=True)
    first, second = pairs // scale, pairs % scale
    union = np.bincount(reference.ravel())[first] + np.bincount(candidate.ravel())[second] - overlap
    iou = overlap / union
    matched = iou > 0.5
    return int(matched.sum()), float(iou[matched].mean()) if matched.any() else 0.0


def huge_run(model, size: int, block_size: int, folder: Path, formats: tuple[str, ...] = ()) -> None:
    from nuclei_app.block_sources import needs_blocks
    from nuclei_app.blocks import segment_in_blocks
    from nuclei_app.machine import describe_machine

    print(f"machine: {describe_machine()}")
    field = NucleusField()
    started = time.perf_counter()
    path = write_field_tiff(folder / f"field_{size}.tif", field, size, size)
    written = time.perf_counter() - started
    print(f"wrote {size}x{size} tiled TIFF ({path.stat().st_size / 2**20:.0f} MB) in {written:.0f} s; "
          f"peak RSS so far {peak_rss_gb():.2f} GB", flush=True)
    print(f"needs_blocks: {needs_blocks(path)}")
    out = folder / "out"
    out.mkdir()
    started = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            print(f"  block {done}/{total}, {last[0] - started:.0f} s, peak RSS {peak_rss_gb():.2f} GB", flush=True)

    result = segment_in_blocks(model, path, out, "field", block_size=block_size, progress=progress,
                               intensities="intensities" in formats, shape_formats=formats)
    seconds = time.perf_counter() - started
    truth = field.count(size, size)
    with tifffile.TiffFile(result.files["labels"]) as tif:
        page = tif.pages.first
        layout = f"{page.imagewidth}x{page.imagelength} {page.dtype}, tiles {page.tilewidth}x{page.tilelength}"
    with Image.open(result.files["overlay"]) as picture:
        overlay_size = picture.size
    print(f"{size}x{size}: {result.count} nuclei (true {truth}, {100 * (result.count - truth) / truth:+.2f} %), "
          f"diameter {result.diameter:.1f} px ({result.diameter_source}), {result.blocks} blocks of "
          f"{result.block_size} px + {result.margin} px margin, oversized {result.oversized}, "
          f"second versions dropped {result.duplicates}")
    print(f"  time {seconds:.0f} s ({seconds * 1e6 / size**2:.2f} us/px); labels TIFF {layout}; overlay {overlay_size}")
    extra = {kind: path for kind, path in result.files.items() if kind not in ("labels", "overlay")}
    if extra:
        print("  also " + ", ".join(f"{path.name} ({path.stat().st_size / 2**20:.0f} MB)" for path in extra.values()))
    print(f"  peak RSS {peak_rss_gb():.2f} GB (target <= {TARGET_RSS_GB} GB)", flush=True)


def compare_run(model, size: int, block_size: int) -> None:
    """Block-wise against whole-image segmentation of one image: with the automatic diameter
    each finds, at the whole image's diameter (the stitching alone), and, as a control, the
    whole image at the block-wise run's diameter (what that small difference in scale does
    by itself)."""
    from nuclei_app.blocks import segment_array_in_blocks
    from nuclei_app.pipeline import segment
    from nuclei_app.scale import scale_factor

    # Nuclei large enough that the whole-image path need not shrink a 6000x6000 image below
    # their scale to stay under its 16 Mpx network input cap (pipeline.capped_factor): a
    # block has no such cap, and a comparison at two scales would measure the cap, not the
    # stitching.
    field = NucleusField(diameter=COMPARE_DIAMETER)
    image = field.render(0, size, 0, size).astype(np.float32)[..., None] / 255
    whole, whole_s = timed(segment, model, image)
    diameter = whole.prediction.diameter
    print(f"{size}x{size} whole image: {whole.count} nuclei (true {field.count(size, size)}), diameter "
          f"{diameter:.3f} px ({whole.prediction.diameter_source}), {whole_s:.0f} s", flush=True)
    uncapped = scale_factor(diameter, model.diameter)
    if whole.prediction.factor < uncapped - 1e-6:
        print(f"  note: the whole image was segmented at x{whole.prediction.factor:.3f}, capped from x{uncapped:.3f} "
              "(pipeline.MAX_NETWORK_PIXELS); blocks are not capped")
    automatic, automatic_s = timed(segment_array_in_blocks, model, image, block_size=block_size)
    report("block-wise, automatic diameter", whole.labels, automatic.labels,
           f"diameter {automatic.diameter:.3f} px ({automatic.diameter_source}), {automatic.blocks} blocks of "
           f"{automatic.block_size} px, {automatic_s:.0f} s")
    given, given_s = timed(segment_array_in_blocks, model, image, diameter=diameter, block_size=block_size)
    report("block-wise at the whole image's diameter (the stitching)", whole.labels, given.labels, f"{given_s:.0f} s")
    control, _ = timed(segment, model, image, diameter=automatic.diameter)
    report("control: whole image at the block-wise diameter", whole.labels, control.labels,
           f"{abs(automatic.diameter / diameter - 1):.3%} scale difference")


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    return function(*args, **kwargs), time.perf_counter() - started


def report(title: str, reference: np.ndarray, labels: np.ndarray, details: str) -> None:
    count, found = int(reference.max(initial=0)), int(labels.max(initial=0))
    matched, mean_iou = matched_iou(reference, labels)
    print(f"  {title}: {found} nuclei, count {100 * (found - count) / max(count, 1):+.2f} % (bar: within 0.5 %), "
          f"matched {100 * matched / max(count, 1):.1f} %, mean IoU {mean_iou:.4f} (bar: >= 0.98); {details}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.huge_image", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="side of the huge image, px (0: skip)")
    parser.add_argument("--compare-size", type=int, default=6000, help="side of the block-vs-whole image (0: skip)")
    parser.add_argument("--block-size", type=int, default=None, help="core side, px (default: the product's)")
    parser.add_argument("--model", help="model source (default: bundled)")
    parser.add_argument("--formats", type=parse_formats, default=(),
                        help="of the huge image, besides its label TIFF and overview: rois, geojson, intensities "
                             "(written as the blocks are stitched)")
    args = parser.parse_args(argv)
    from nuclei_app.blocks import DEFAULT_BLOCK
    from nuclei_app.sources import describe, resolve_model

    block_size = args.block_size or DEFAULT_BLOCK

    model = resolve_model(args.model)
    print(f"model: {describe(model)}; peak RSS after loading: {peak_rss_gb():.2f} GB", flush=True)
    if args.size:
        with tempfile.TemporaryDirectory(prefix="huge_image_", dir=Path.cwd()) as folder:  # /tmp may be RAM
            huge_run(model, args.size, block_size, Path(folder), args.formats)
    if args.compare_size:
        compare_run(model, args.compare_size, block_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
