"""Two cheap inference changes, checked on the validation split before any retraining:

1. Refining the automatic diameter more often. The pipeline segments at the blob estimate,
   measures the nuclei found and segments again at that measure only when the two differ by
   more than 15 % (``pipeline.REFINE_TOLERANCE``). The first pass's measure is closer to the
   truth than the blob estimate; would a smaller tolerance, or a second refinement, score
   higher?
2. Growing every nucleus outward. The held-out set's light images are drawn inside their
   true outline. Are the validation images too (area of matched nuclei, predicted / true),
   and does growing each label (``skimage.segmentation.expand_labels``) by 0.5-1.5 px at the
   network's scale help?

Bundled model, 135 validation images, shipped post-processing settings; ~6 min on 2 cores:

    .venv/bin/python experiments/first_pass/check.py     (from the project root)
"""
from __future__ import annotations

import collections
import math
import sys
from pathlib import Path

import numpy as np
from skimage.segmentation import expand_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nuclei_app import size_search  # noqa: E402
from nuclei_app.metrics import image_scores  # noqa: E402
from nuclei_app.pipeline import (REFINE_TOLERANCE, _predict_for_diameter, inference_for, labels_for,  # noqa: E402
                                 network_input)
from nuclei_app.scale import estimate_diameter, median_diameter  # noqa: E402
from nuclei_app.sources import resolve_model  # noqa: E402
from train import evaluate as ev  # noqa: E402
from train.data import find_samples, load_samples  # noqa: E402

DATA = Path("../shared/data/dsb2018/stage1_train")
TOLERANCES = (1.15, 1.10, 1.07, 1.05, 1.0)
GROWTH_PX = (0.5, 1.0, 1.5)   # at the network's scale (16 px nuclei)


def passes(model, original) -> dict:
    """The first pass at the checked estimate and two refinements, each pass's mean AP and
    the median diameter of what it found."""
    network = network_input(model, original.image)
    prepared, chosen, estimate = network.image, network.channel, network.estimate
    tta = inference_for(model, None, network.light).tta
    probed: dict = {}
    diameter = size_search.checked_estimate(model, prepared, estimate or estimate_diameter(prepared), probed)
    steps = []
    for _ in range(3):
        prediction = _predict_for_diameter(model, prepared, diameter, "estimated", chosen, tta, None)
        labels = labels_for(model, prediction)
        measured = median_diameter(labels) or size_search.fallback_diameter(probed)
        steps.append({"diameter": diameter, "labels": labels, "measured": measured,
                      "ap": image_scores(original.labels, labels).mean_ap})
        if not measured:
            break
        diameter = measured
    return {"truth": median_diameter(original.labels), "steps": steps}


def with_tolerance(steps: list[dict], tolerance: float) -> dict:
    first = steps[0]
    moved = first["measured"] and abs(math.log(first["measured"] / first["diameter"])) > math.log(tolerance)
    return steps[1] if moved and len(steps) > 1 else first


def area_ratios(truth: np.ndarray, predicted: np.ndarray) -> list[float]:
    """Predicted / true area of every pair matched at IoU > 0.5."""
    t, p = truth.ravel(), predicted.ravel()
    both = (t > 0) & (p > 0)
    pairs, overlaps = np.unique(np.stack([t[both], p[both]]), axis=1, return_counts=True)
    true_area, predicted_area = np.bincount(t), np.bincount(p)
    ratios = []
    for (a, b), overlap in zip(pairs.T, overlaps):
        if overlap / (true_area[a] + predicted_area[b] - overlap) > 0.5:
            ratios.append(predicted_area[b] / true_area[a])
    return ratios


def means(scores: dict[str, list[float]]) -> str:
    return "  ".join(f"{kind} {np.mean(values):.4f}" for kind, values in scores.items())


def main() -> None:
    model = resolve_model("assets/model", fallback=False)
    wanted = set(model.metadata["training"]["validation_ids"])
    samples = load_samples([f for f in find_samples(DATA) if f.sample_id in wanted], model.normalisation,
                           model.diameter)
    rule = collections.defaultdict(lambda: collections.defaultdict(list))
    growth = collections.defaultdict(lambda: collections.defaultdict(list))
    ratios = collections.defaultdict(list)
    errors = collections.defaultdict(list)
    for original in ev.originals(samples):
        traced = passes(model, original)
        steps = traced["steps"]
        for name, chosen in [(f"refine once beyond {t:.2f}x", with_tolerance(steps, t)) for t in TOLERANCES] + \
                            [("refine twice, always", steps[-1]), ("never refine", steps[0])]:
            for kind in ("all", original.kind):
                rule[name][kind].append(chosen["ap"])
        shipped = with_tolerance(steps, REFINE_TOLERANCE)
        for px in (0.0,) + GROWTH_PX:
            grown = expand_labels(shipped["labels"], px * shipped["diameter"] / model.diameter) if px else shipped["labels"]
            for kind in ("all", original.kind):
                growth[px][kind].append(image_scores(original.labels, grown).mean_ap)
        ratios[original.kind] += area_ratios(original.labels, shipped["labels"])
        for index, step in enumerate(steps[:2]):
            errors[f"pass {index + 1} at"].append(math.log(step["diameter"] / traced["truth"]))
            if step["measured"]:
                errors[f"pass {index + 1} measured"].append(math.log(step["measured"] / traced["truth"]))
    print(f"mean AP, shipped rule = refine once beyond {REFINE_TOLERANCE:.2f}x")
    for name, scores in rule.items():
        print(f"  {name:28s} {means(scores)}")
    print("diameter / truth (135 images): median of |error|, median signed error, share within 15 %")
    for name, logs in errors.items():
        logs = np.array(logs)
        print(f"  {name:20s} {math.expm1(np.median(np.abs(logs))):+.3f} {math.expm1(np.median(logs)):+.3f} "
              f"{np.mean(np.abs(logs) < math.log(1.15)):.3f}")
    print("mean AP with every nucleus grown by N px at the network's scale")
    for px, scores in growth.items():
        print(f"  {px:.1f} px  {means(scores)}")
    print("area of matched nuclei (IoU > 0.5), predicted / true: median")
    for kind, values in ratios.items():
        print(f"  {kind:13s} {np.median(values):.3f} ({len(values)} nuclei)")


if __name__ == "__main__":
    main()
