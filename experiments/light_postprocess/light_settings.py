"""Would light-background images (brightfield, H&E) gain from post-processing settings of
their own? The held-out set's light images come out "drawn well inside their true outline";
a lower foreground threshold draws them larger. The bundled model's settings were tuned on
all 135 validation images, 109 of them fluorescence.

Leave-one-source-group-out over the light validation images: settings tuned (the export's
own coordinate search) on the other light groups at x1, scored on the left-out group, at x1
and under every shift (stain, scale) the tuning never saw; against the shipped settings on
the same images.

    .venv/bin/python experiments/light_postprocess/light_settings.py   (from the project root)
"""
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent / "combined_shifts"))

from combined import light_validation_images  # noqa: E402

from nuclei_app.sources import resolve_model  # noqa: E402
from train import evaluate as ev  # noqa: E402


def main() -> None:
    model = resolve_model(sys.argv[1] if len(sys.argv) > 1 else "assets/model", fallback=False)
    light = light_validation_images(model)
    groups = np.array([o.group for o in light])
    kinds = np.array([o.kind for o in light])
    print(f"{len(light)} light validation images; groups (kind, n): "
          + ", ".join(f"{g} ({kinds[groups == g][0]}, {int((groups == g).sum())})" for g in sorted(set(groups))))
    tuners = {name: ev.Tuner(model, images, ev.predict_all(model, images))
              for name, images in {"x1": light, "x0.5": ev.rescaled(light, 0.5), "x2": ev.rescaled(light, 2.0),
                                   **ev.light_shifts(light)}.items()}
    shipped = model.postprocess_settings
    chosen = {}
    for group in sorted(set(groups)):
        chosen[group] = tuners["x1"].best(groups != group)
        print(f"tuned without group {group}: {chosen[group]}")
    print(f"tuned on all light images: {tuners['x1'].best(np.ones(len(light), bool))}")
    print(f"shipped: {shipped}")
    print("condition   shipped  left-out-tuned   (brightfield, tissue)")
    for name, tuner in tuners.items():
        base = tuner.aps(shipped)
        held = np.empty(len(light))
        for group, settings in chosen.items():
            held[groups == group] = tuner.aps(settings)[groups == group]
        print(f"{name:9s}   {base.mean():.3f}    {held.mean():.3f}        "
              f"({base[kinds == 'brightfield'].mean():.3f} -> {held[kinds == 'brightfield'].mean():.3f}, "
              f"{base[kinds == 'tissue'].mean():.3f} -> {held[kinds == 'tissue'].mean():.3f})", flush=True)


if __name__ == "__main__":
    main()
