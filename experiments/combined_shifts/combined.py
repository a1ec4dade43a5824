"""Light validation images shifted in stain and scale at once, scored with the automatic
diameter and with the true one: does the pipeline's scale still hold when the stain is one
the training set lacks (the held-out set's H&E "at another magnification")?

    .venv/bin/python experiments/combined_shifts/combined.py   (from the project root; ~5 min)

Uses the bundled model, its own validation ids and post-processing settings, and the shift
functions of train.evaluate (``restained``: dark / ihc; ``rescaled``: x0.5 / x2).
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nuclei_app.scale import median_diameter  # noqa: E402
from nuclei_app.sources import resolve_model  # noqa: E402
from train import evaluate as ev  # noqa: E402
from train.data import DEFAULT_DATA_DIR, find_samples, load_samples  # noqa: E402

RESTAINS = ("none", "dark", "ihc")
FACTORS = (0.5, 1.0, 2.0)


def light_validation_images(model) -> list:
    ids = set(model.metadata["training"]["validation_ids"])
    files = [f for f in find_samples(DEFAULT_DATA_DIR) if f.sample_id in ids]
    samples = load_samples(files, model.normalisation, model.diameter)
    return [o for o in ev.originals(samples) if o.kind in ev.LIGHT_KINDS]


def report(model, images: list, label: str, true_diameter: bool) -> str:
    diameters = [median_diameter(o.labels) for o in images] if true_diameter else None
    predictions = ev.predict_all(model, images, diameters=diameters)
    aps = ev.image_aps(model, images, predictions, model.postprocess_settings)
    ratios = np.array([p.diameter / median_diameter(o.labels) for o, p in zip(images, predictions)])
    kinds = np.array([o.kind for o in images])
    off = int((np.abs(np.log(ratios)) > np.log(1.3)).sum())
    return (f"{label} {'true' if true_diameter else 'auto'}: all {aps.mean():.3f} "
            f"brightfield {aps[kinds == 'brightfield'].mean():.3f} tissue {aps[kinds == 'tissue'].mean():.3f}  "
            f"diameter / truth median {np.median(ratios):.2f}, off by > 30 %: {off} of {len(images)}")


def main() -> None:
    model = resolve_model("assets/model", fallback=False)
    light = light_validation_images(model)
    for restain in RESTAINS:
        stained = light if restain == "none" else ev.restained(light, restain)
        for factor in FACTORS:
            images = stained if factor == 1.0 else ev.rescaled(stained, factor)
            for true_diameter in (False, True):
                print(report(model, images, f"{restain:5s} x{factor:<4}", true_diameter), flush=True)


if __name__ == "__main__":
    main()
