"""What the stretch's noise floor (``Normalisation.noise_span``) changes, and what it leaves.

    python -m benchmarks.noise_floor [--data FOLDER] [--model SOURCE]

1. Every training image: its percentile span over its pixel noise (``inference.noise_level``),
   whether the floor changes its stretch (the network's training input), and whether the
   light/dark decision the kinds now follow agrees with the camera-range rule they used before.
2. Synthetic 16-bit fields (a camera offset of 200, read noise of 4): an empty one, and nuclei
   of 18 px (25 on 512x512) at 2-10 times the noise above the background, segmented with the floor
   and without it (``noise_span`` 0).
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from scipy import ndimage

from nuclei_app.channelwise import channel_mean
from nuclei_app.config import Normalisation
from nuclei_app.imageio import read_image
from nuclei_app.inference import Stretch, noise_level
from nuclei_app.kinds import filled_range
from nuclei_app.pipeline import segment
from nuclei_app.sampling import percentile_sample
from nuclei_app.sources import resolve_model
from train.data import DEFAULT_DATA_DIR, find_samples

NOISE = 4.0
OFFSET = 200.0
CONTRASTS = (2, 3, 4, 6, 10)   # nuclei this many times the noise above the background
FLOORLESS = Normalisation(noise_span=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.noise_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA_DIR)
    parser.add_argument("--model")
    parser.add_argument("--side", type=int, default=512, help="the synthetic fields' side, px")
    args = parser.parse_args(argv)
    training_images(args.data)
    synthetic_fields(resolve_model(args.model), args.side)
    return 0


def training_images(data) -> None:
    spans, changed, disagree = [], [], []
    for files in find_samples(data):
        image = read_image(files.image_path)
        sample = percentile_sample(image)
        stretch, bare = Stretch.fit(sample), Stretch.fit(sample, FLOORLESS)
        noise = noise_level(sample)
        low, high = np.percentile(sample, (1.0, 99.8))
        spans.append(((high - low) / noise if noise else np.inf, files.sample_id))
        if stretch != bare:
            changed.append(files.sample_id)
        if stretch.invert != _camera_range_light(image):
            disagree.append(files.sample_id)
    spans.sort()
    print(f"{len(spans)} training images; span / noise: smallest {spans[0][0]:.1f} ({spans[0][1]}), "
          f"5th percentile {np.percentile([s for s, _ in spans], 5):.1f}")
    print(f"stretch changed by the floor: {len(changed)} {changed[:5]}")
    print(f"light/dark unlike the camera-range rule: {len(disagree)} {disagree[:5]}")


def synthetic_fields(model, side: int) -> None:
    rng = np.random.default_rng(0)
    disks = _disks(side, 18, 96)
    count = ndimage.label(disks)[1]
    fields = [("empty", 0)] + [(f"{count} nuclei, {k}x the noise", k) for k in CONTRASTS]
    floorless = dataclasses.replace(model, metadata=_metadata_without_floor(model.metadata))
    print(f"{'16-bit field: nuclei found':<28} {'with floor':>10} {'without':>8}")
    for name, contrast in fields:
        raw = OFFSET + rng.normal(0, NOISE, disks.shape) + contrast * NOISE * disks
        image = np.repeat((np.round(raw) / 65535).astype(np.float32)[..., None], 3, axis=-1)
        counts = [segment(m, image).count for m in (model, floorless)]
        print(f"{name:<28} {counts[0]:>10} {counts[1]:>8}")


def _disks(side: int, diameter: int, spacing: int) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    disks = np.zeros((side, side))
    for cy in range(spacing // 2 + 16, side, spacing):
        for cx in range(spacing // 2 + 16, side, spacing):
            disks[(yy - cy) ** 2 + (xx - cx) ** 2 < (diameter / 2) ** 2] = 1
    return disks


def _metadata_without_floor(metadata: dict) -> dict:
    normalisation = dict(metadata["input"]["normalisation"], noise_span=0.0)
    return dict(metadata, input=dict(metadata["input"], normalisation=normalisation))


def _camera_range_light(image: np.ndarray) -> bool:
    """The kinds' light/dark rule before they followed the stretch: the median against the
    camera's range."""
    camera_range = filled_range(image)
    return float(np.median(channel_mean(image / camera_range))) >= 0.5


if __name__ == "__main__":
    raise SystemExit(main())
