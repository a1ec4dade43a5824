"""Multi-scale test-time augmentation on light images: the network's probabilities averaged
over the image at its nuclei's scale and at 0.8x and 1.25x that scale, against the shipped
single scale with flips.

The bundled model, its validation split's brightfield and tissue images, every shift
condition of ``train.evaluate`` that holds them; each image first segmented the way the
pipeline does (automatic diameter, flips because it is light), then its probabilities
recomputed at the other scales around the diameter the pipeline chose, averaged at the
input's size and post-processed with the shipped settings. Scored by mean AP.

    .venv/bin/python experiments/multiscale_light/compare.py [--model assets/model] [--limit N]

Modes: ``flips`` (shipped: one scale, four flips), ``scales`` (three scales, no flips: three
network passes against four), ``scales+flips`` (three scales of four flips each: 3x the
shipped network time).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from experiments.stain_channel.compare import conditions, light_validation  # noqa: E402
from nuclei_app.pipeline import _predict_at, labels_for, network_input, segment  # noqa: E402
from nuclei_app.sources import resolve_model  # noqa: E402
from train.evaluate import LIGHT_KINDS, score_labels  # noqa: E402

SCALES = (0.8, 1.25)  # besides 1: nuclei at 12.8 and 20 px for a network trained at 16
MODES = ("flips", "scales", "scales+flips")


def labels_by_mode(model, image: np.ndarray) -> dict[str, np.ndarray]:
    shipped = segment(model, image, tta=True)
    prediction = shipped.prediction
    prepared = network_input(model, image).image
    factor = prediction.factor

    def probabilities(scale: float, flips: bool) -> np.ndarray:
        return _predict_at(model, prepared, factor * scale, flips, None)

    flipped = [prediction.probabilities] + [probabilities(s, True) for s in SCALES]
    plain = [probabilities(s, False) for s in (1.0, *SCALES)]
    averaged = {"scales": np.mean(plain, axis=0), "scales+flips": np.mean(flipped, axis=0)}
    labels = {mode: labels_for(model, replace(prediction, probabilities=p)) for mode, p in averaged.items()}
    return {"flips": shipped.labels, **labels}


def mean_ap(images, labels: list[dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    return {mode: {kind: scores["mean_ap"] for kind, scores in score_labels(images, [l[mode] for l in labels]).items()}
            for mode in MODES}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="assets/model")
    parser.add_argument("--limit", type=int, default=None, help="only the first N light images (a quick try)")
    args = parser.parse_args(argv)
    model = resolve_model(args.model, fallback=False)
    images = light_validation(model, args.limit)
    counts = {kind: sum(o.kind == kind for o in images) for kind in LIGHT_KINDS}
    print(f"model {Path(args.model)}; light validation images {counts}; scales 1, {', '.join(map(str, SCALES))}; mean AP")
    print(f"{'condition':<10}{'kind':<13}" + "".join(f"{mode:>14}" for mode in MODES))
    started = time.perf_counter()
    for condition, shifted in conditions(images).items():
        scores = mean_ap(shifted, [labels_by_mode(model, o.image) for o in shifted])
        for kind in scores["flips"]:
            print(f"{condition:<10}{kind:<13}" + "".join(f"{scores[m][kind]:>14.3f}" for m in MODES), flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
