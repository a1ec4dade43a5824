"""Does the default channel choice score like the grey image? Composites of validation images.

    python -m benchmarks.channels [--model SOURCE] [--max-images N]
    python -m benchmarks.channels --choice-only

For each fluorescence image of the model's validation split (ids in its nuclei.json): the
grey image, an RGB composite (nuclei in blue, a cytoplasm-like stain in green), the same with
the stain's brightness varying from cell to cell, and a 4-channel 16-bit stack (nuclei in
channel 2) are segmented with defaults; mean AP against the truth.
``--choice-only``: no network; the default channel choice alone, on the composites of every
fluorescence image of the data folder (training and validation), with the images it missed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from .composites import four_channel_stack, rgb_composite
from nuclei_app.metrics import image_scores
from nuclei_app.pipeline import segment
from nuclei_app.sources import describe, resolve_model
from train.data import DEFAULT_DATA_DIR, find_samples, read_instance_labels
from nuclei_app.imageio import read_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.channels", description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--data", default=DEFAULT_DATA_DIR)
    parser.add_argument("--max-images", type=int, default=60)
    parser.add_argument("--choice-only", action="store_true", help="count the channel choices only, on every image")
    args = parser.parse_args(argv)
    if args.choice_only:
        return count_choices(args.data)
    model = resolve_model(args.model)
    ids = set(model.metadata["training"].get("validation_ids", []))
    files = [f for f in find_samples(args.data) if f.sample_id in ids]
    started = time.time()
    scores = {"grey": [], **{name: [] for name in COMPOSITES}}
    picked = {name: [] for name in COMPOSITES}
    used = 0
    for index, files_ in enumerate(files):
        image = read_image(files_.image_path)
        if not is_fluorescence(image) or used >= args.max_images:
            continue
        used += 1
        labels = read_instance_labels(files_)
        inputs = {"grey": image, **composites(image, labels, index)}
        for name, data in inputs.items():
            result = segment(model, data)
            scores[name].append(image_scores(labels, result.labels).mean_ap)
            if name in picked:
                picked[name].append(result.prediction.channel == 2)
    print(f"model: {describe(model)}; {used} fluorescence validation images")
    for name, values in scores.items():
        choice = f", nuclear channel chosen in {np.mean(picked[name]):.0%}" if name in picked else ""
        print(f"{name:>18}: mean AP {np.mean(values):.3f}{choice}")
    print(f"({time.time() - started:.0f} s)")
    return 0


COMPOSITES = ("RGB composite", "RGB, uneven stain", "4-channel 16-bit")


def composites(image: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The image's nuclei in ``COMPOSITES``: RGB composites and a 4-channel 16-bit stack
    (channel 2 all)."""
    nuclei = image.mean(axis=-1)
    return {"RGB composite": rgb_composite(nuclei, labels, seed),
            "RGB, uneven stain": rgb_composite(nuclei, labels, seed, uneven=True),
            "4-channel 16-bit": np.round(four_channel_stack(nuclei, labels, seed) * 65535) / 65535}


def is_fluorescence(image: np.ndarray) -> bool:
    return float(np.median(image.mean(axis=-1))) < 0.5   # composites of brightfield make no sense


def count_choices(data) -> int:
    from nuclei_app.channels import choose_channel

    started = time.time()
    missed: dict[str, list[str]] = {name: [] for name in COMPOSITES}
    count = 0
    for index, files in enumerate(find_samples(data)):
        image = read_image(files.image_path)
        if not is_fluorescence(image):
            continue
        count += 1
        for name, stack in composites(image, read_instance_labels(files), index).items():
            if choose_channel(stack) != 2:
                missed[name].append(files.sample_id[:8])
    print(f"default channel choice on composites of {count} fluorescence images (nuclei in channel 2):")
    for name, ids in missed.items():
        print(f"{name:>18}: nuclear channel chosen in {count - len(ids)} of {count}; missed: {' '.join(ids) or '-'}")
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
