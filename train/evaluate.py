"""Validation: whole-image predictions, threshold tuning, metrics per image kind, figures.

Predictions go through the same ``predict_preprocessed`` + ``instance_labels`` the CLI and
app use (the stored validation images are the output of the shared ``preprocess``).
"""
from __future__ import annotations

import csv
import itertools
import logging
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nuclei_app.config import InferenceSettings, PostprocessSettings
from nuclei_app.inference import predict_preprocessed
from nuclei_app.metrics import image_scores, mean_scores
from nuclei_app.postprocess import instance_labels

from .callbacks import save_panel
from .data import KINDS, Sample

log = logging.getLogger("train.evaluate")

THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8)
MARKER_THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_SIZES = (8, 16, 24, 32, 48, 64)


def predict_all(model, samples: list[Sample], multiple: int, tta: bool) -> list[np.ndarray]:
    settings = InferenceSettings(tta=tta)
    return [predict_preprocessed(model, s.image.astype(np.float32), settings, multiple) for s in samples]


def score(samples: list[Sample], probabilities: list[np.ndarray], settings: PostprocessSettings) -> dict:
    scores = [image_scores(s.labels, instance_labels(p, settings)) for s, p in zip(samples, probabilities)]
    report = {"all": mean_scores(scores)}
    for kind in KINDS:
        of_kind = [sc for sc, s in zip(scores, samples) if s.kind == kind]
        if of_kind:
            report[kind] = mean_scores(of_kind)
    return report


def tune(samples: list[Sample], probabilities: list[np.ndarray]) -> tuple[PostprocessSettings, float]:
    """Coordinate search on the validation mean AP: (threshold, marker) then min size."""
    best, best_ap = PostprocessSettings(), -1.0
    for threshold, marker in itertools.product(THRESHOLDS, MARKER_THRESHOLDS):
        candidate = replace(best, threshold=threshold, marker_threshold=marker)
        ap = score(samples, probabilities, candidate)["all"]["mean_ap"]
        if ap > best_ap:
            best, best_ap = candidate, ap
    for min_size in MIN_SIZES:
        candidate = replace(best, min_size=min_size)
        ap = score(samples, probabilities, candidate)["all"]["mean_ap"]
        if ap > best_ap:
            best, best_ap = candidate, ap
    log.info("tuned post-processing: %s (validation mean AP %.4f)", best, best_ap)
    return best, best_ap


def evaluate_model(model, samples: list[Sample], config, multiple: int) -> dict:
    """The validation report stored in nuclei.json and the model card."""
    plain = predict_all(model, samples, multiple, tta=False)
    settings = tune(samples, plain)[0] if config.tune else PostprocessSettings()
    with_tta = predict_all(model, samples, multiple, tta=True)
    report = {
        "postprocess": asdict(settings),
        "validation": score(samples, plain, settings),
        "validation_tta": score(samples, with_tta, settings),
        "validation_images": {kind: sum(s.kind == kind for s in samples) for kind in KINDS},
    }
    for name in ("validation", "validation_tta"):
        log.info("%s: %s", name, {k: round(v["mean_ap"], 4) for k, v in report[name].items()})
    return report


def save_figures(model, folder: Path, samples: list[Sample], report: dict) -> None:
    figures = Path(folder) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(Path(folder) / "log.csv", figures / "learning_curves.png")
    from .train import panel_samples  # the same fixed images the training panels showed

    save_panel(model, panel_samples(samples, 3), figures / "predictions.png",
               title="validation: image | ground truth | prediction")


def plot_learning_curves(csv_path: Path, out: Path) -> None:
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, (loss_axis, dice_axis) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, axis in (("loss", loss_axis), ("body_dice", dice_axis)):
        axis.plot(epochs, [float(r[key]) for r in rows], label="train")
        axis.plot(epochs, [float(r["val_" + key]) for r in rows], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title({"loss": "BCE + Dice loss", "body_dice": "nucleus Dice"}[key])
        axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)


def evaluate_folder(model_source: str, data: Path, tta: bool) -> dict:
    """Re-scores a model folder on its own validation split (seed from its nuclei.json)."""
    from nuclei_app.sources import resolve_model

    from .data import find_samples, load_samples, split_train_validation

    model = resolve_model(model_source, fallback=False)
    training = model.metadata["training"]
    samples = load_samples(find_samples(data), model.normalisation)
    validation = split_train_validation(samples, training["validation_fraction"], training["split_seed"])[1]
    probabilities = predict_all(model, validation, model.size_multiple, tta=tta)
    return score(validation, probabilities, model.postprocess_settings)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from .data import DEFAULT_DATA_DIR, DatasetError
    from .export import metrics_table

    parser = argparse.ArgumentParser(prog="python -m train.evaluate",
                                     description="Score a model folder on its validation split.")
    parser.add_argument("--model", default="assets/model", help="model source (default: assets/model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    args = parser.parse_args(argv)
    from nuclei_app.model import ModelLoadError

    try:
        report = evaluate_folder(args.model, args.data, args.tta)
    except (DatasetError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(metrics_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
