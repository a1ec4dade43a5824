"""Does the default channel choice score like the grey image? Composites of validation images.

    python -m benchmarks.channels [--model SOURCE] [--max-images N]

For each fluorescence image of the model's validation split (ids in its nuclei.json): the
grey image, an RGB composite (nuclei in blue, a cytoplasm-like stain in green) and a 4-channel
16-bit stack (nuclei in channel 2) are segmented with defaults; mean AP against the truth.
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
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    ids = set(model.metadata["training"].get("validation_ids", []))
    files = [f for f in find_samples(args.data) if f.sample_id in ids]
    started = time.time()
    scores = {"grey": [], "RGB composite": [], "4-channel 16-bit": []}
    picked = {"RGB composite": [], "4-channel 16-bit": []}
    used = 0
    for index, files_ in enumerate(files):
        image = read_image(files_.image_path)
        if float(np.median(image.mean(axis=-1))) >= 0.5 or used >= args.max_images:
            continue  # fluorescence only: composites of brightfield make no sense
        used += 1
        labels = read_instance_labels(files_)
        nuclei = image.mean(axis=-1)
        inputs = {"grey": image, "RGB composite": rgb_composite(nuclei, labels, index),
                  "4-channel 16-bit": np.round(four_channel_stack(nuclei, labels, index) * 65535) / 65535}
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


if __name__ == "__main__":
    raise SystemExit(main())
