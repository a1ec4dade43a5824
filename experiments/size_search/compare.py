"""The automatic diameter with and without the size search, on every DSB2018 training image.

    .venv/bin/python experiments/size_search/compare.py [--model assets/model]   (from the project root)

Only images whose blob estimate is above ``SEARCH_ABOVE`` can change (below it the search is
not run), so only those are segmented, twice: the search off (the estimate, then the
pipeline's usual check) and on. Prints each one and the means per kind and split. Training-
split images were seen by the network in training: their scores flatter it, but both rows
use the same network, so the difference is the diameter's.
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nuclei_app import size_search  # noqa: E402
from nuclei_app.imageio import read_image  # noqa: E402
from nuclei_app.kinds import image_kind  # noqa: E402
from nuclei_app.metrics import image_scores  # noqa: E402
from nuclei_app.pipeline import network_input, segment  # noqa: E402
from nuclei_app.scale import estimate_diameter, median_diameter  # noqa: E402
from nuclei_app.sources import resolve_model  # noqa: E402
from train.data import DEFAULT_DATA_DIR, find_samples, read_instance_labels  # noqa: E402


def segmented(model, image, search: bool):
    threshold = size_search.SEARCH_ABOVE
    size_search.SEARCH_ABOVE = threshold if search else math.inf
    try:
        return segment(model, image)
    finally:
        size_search.SEARCH_ABOVE = threshold


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="assets/model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    model = resolve_model(args.model, fallback=False)
    validation = set(model.metadata["training"]["validation_ids"])
    rows, total = [], 0
    for files in find_samples(args.data):
        image = read_image(files.image_path)
        total += 1
        if estimate_diameter(network_input(model, image).image) <= size_search.SEARCH_ABOVE:
            continue
        truth = read_instance_labels(files)
        off, on = segmented(model, image, False), segmented(model, image, True)
        row = (files.sample_id[:8], image_kind(image), "validation" if files.sample_id in validation else "training",
               median_diameter(truth), off.prediction.diameter, on.prediction.diameter,
               image_scores(truth, off.labels).mean_ap, image_scores(truth, on.labels).mean_ap)
        rows.append(row)
        print("%s %-12s %-10s true %5.1f px | search off: %6.1f px, mean AP %.3f | on: %5.1f px, mean AP %.3f"
              % (row[:5] + (row[6], row[5], row[7])), flush=True)
    print(f"\n{len(rows)} of {total} images estimated above {size_search.SEARCH_ABOVE:g} px (the others are unchanged)")
    for split in ("training", "validation"):
        for kind in ("fluorescence", "brightfield", "tissue"):
            chosen = [r for r in rows if r[1] == kind and r[2] == split]
            if chosen:
                off, on = np.mean([r[6] for r in chosen]), np.mean([r[7] for r in chosen])
                print(f"{split:10s} {kind:12s} {len(chosen):3d} images: mean AP {off:.3f} -> {on:.3f}")


if __name__ == "__main__":
    main()
