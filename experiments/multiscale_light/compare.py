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

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from experiments.stain_channel.compare import run_comparison  # noqa: E402
from nuclei_app.pipeline import _predict_at, labels_for, network_input, segment  # noqa: E402
from train.evaluate import score_labels  # noqa: E402

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
    def scorer(model):
        return (f"; scales 1, {', '.join(map(str, SCALES))}",
                lambda images: mean_ap(images, [labels_by_mode(model, o.image) for o in images]))

    return run_comparison(argv, __doc__.splitlines()[0], list(MODES), scorer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
