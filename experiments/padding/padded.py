"""Validation images pasted onto a blank canvas, as tiles of a mosaic or a slide export
leave them: how far does the canvas throw the pipeline's decisions (channel, stretch, light
or dark, automatic diameter)? A baseline for padding-aware preprocessing.

    .venv/bin/python experiments/padding/padded.py   (from the project root; ~7 min)

Each validation image of the bundled model (its own ids and settings) is scored as it is and
pasted into the top-left corner of a canvas twice its height and width, filled with white
(1.0) and with black (0.0); the truth is padded with background. Same pipeline as
``train.evaluate`` (automatic diameter, shipped post-processing settings).
"""
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nuclei_app.scale import median_diameter  # noqa: E402
from nuclei_app.sources import resolve_model  # noqa: E402
from train import evaluate as ev  # noqa: E402
from train.data import DEFAULT_DATA_DIR, find_samples, load_samples  # noqa: E402

FILLS = {"white": 1.0, "black": 0.0}


def validation_images(model) -> list:
    ids = set(model.metadata["training"]["validation_ids"])
    files = [f for f in find_samples(DEFAULT_DATA_DIR) if f.sample_id in ids]
    return ev.originals(load_samples(files, model.normalisation, model.diameter))


def padded(images: list, fill: float) -> list:
    out = []
    for o in images:
        height, width = o.labels.shape
        canvas = np.full((2 * height, 2 * width, o.image.shape[-1]), fill, np.float32)
        canvas[:height, :width] = o.image
        labels = np.zeros((2 * height, 2 * width), o.labels.dtype)
        labels[:height, :width] = o.labels
        out.append(replace(o, image=canvas, labels=labels))
    return out


def report(model, images: list, predictions: list, alone: list, label: str) -> str:
    aps = ev.image_aps(model, images, predictions, model.postprocess_settings)
    ratios = np.array([p.diameter / median_diameter(o.labels) for o, p in zip(images, predictions)])
    kinds = np.array([o.kind for o in images])
    off = int((np.abs(np.log(ratios)) > np.log(1.3)).sum())
    changed = sum(p.channel != a.channel for p, a in zip(predictions, alone))
    by_kind = " ".join(f"{kind} {aps[kinds == kind].mean():.3f} ({int((kinds == kind).sum())})"
                       for kind in ("fluorescence", "brightfield", "tissue"))
    return (f"{label}: all {aps.mean():.3f} {by_kind}; diameter off by > 30 %: {off} of {len(images)}; "
            f"another channel than as imaged: {changed}")


def main() -> None:
    model = resolve_model("assets/model", fallback=False)
    images = validation_images(model)
    alone = ev.predict_all(model, images)
    print(report(model, images, alone, alone, "as imaged     "), flush=True)
    for name, fill in FILLS.items():
        canvas = padded(images, fill)
        print(report(model, canvas, ev.predict_all(model, canvas), alone, f"{name} canvas x2"), flush=True)


if __name__ == "__main__":
    main()
