"""Where the shipped post-processing loses nuclei, and whether splitting markers by their
shape helps (run cache.py first, with the same MODEL_FOLDER, default assets/model; ~1 min on 2 cores):

    .venv/bin/python experiments/marker_split/check.py /tmp/marker_split [MODEL_FOLDER]     (from the project root)

1. Error kinds, per image kind: every true nucleus without a prediction at IoU > 0.5 is
   "merged" (its best-overlapping prediction covers most of another true nucleus too),
   "missed" (most of it background) or "poorly drawn"; every unmatched prediction is
   "split" (most of it inside a true nucleus another prediction also covers) or "spurious".
2. Markers split at their necks: the body-minus-boundary score above the marker threshold
   gives one marker per interior, and two touching interiors with a weak boundary between
   them give one marker. Each marker is split where its distance transform has two maxima
   whose dynamic (``skimage.morphology.h_maxima``) exceeds h px at the network's scale.
"""
from __future__ import annotations

import collections
import pickle
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nuclei_app.metrics import image_scores  # noqa: E402
from nuclei_app.pipeline import scaled_settings  # noqa: E402
from nuclei_app.postprocess import (foreground_mask, grown_labels, instance_labels, marker_score,  # noqa: E402
                                    seed_markers)
from nuclei_app.sources import resolve_model  # noqa: E402

VARIANTS = [(h, gate) for h in (1.0, 2.0) for gate in (0.0, 1.5, 2.0, 3.0)]   # h px at the network's scale


def split_markers(markers: np.ndarray, h: float, gate: float) -> np.ndarray:
    """Markers larger than ``gate`` x the image's median marker (0: every marker), cut at their
    necks: seeds at the distance transform's h-maxima, grown back over the marker by a
    watershed on the distance. Smaller markers, and any without an h-maximum, stay whole."""
    areas = np.bincount(markers.ravel())
    if len(areas) < 2:
        return markers
    large = np.flatnonzero(areas > gate * np.median(areas[1:][areas[1:] > 0]))
    large = large[large > 0]
    if large.size == 0:
        return markers
    big = np.isin(markers, large)
    distance = ndimage.distance_transform_edt(big)
    seeds, _ = ndimage.label(h_maxima(distance, h))
    pieces = watershed(-distance, seeds, mask=big)
    out = np.where(big, 0, markers)
    out[big] = np.where(pieces[big] > 0, pieces[big] + markers.max(), markers[big])
    return out


def labels_with_split(probabilities: np.ndarray, settings, h_image_px: float, gate: float) -> np.ndarray:
    foreground = foreground_mask(probabilities, settings)
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    score = marker_score(probabilities)
    markers = split_markers(seed_markers(score, foreground, settings), h_image_px, gate)
    return grown_labels(score, markers, foreground, settings)


def error_kinds(truth: np.ndarray, predicted: np.ndarray) -> collections.Counter:
    t, p = truth.ravel().astype(np.int64), predicted.ravel().astype(np.int64)
    nt, npred = int(t.max()) + 1, int(p.max()) + 1
    overlap = np.bincount(t * npred + p, minlength=nt * npred).reshape(nt, npred)
    ta, pa = overlap.sum(1), overlap.sum(0)
    iou = overlap / (ta[:, None] + pa[None, :] - overlap + 1e-9)
    counts = collections.Counter()
    matched_t = (iou[1:, 1:] > 0.5).any(1) if npred > 1 else np.zeros(nt - 1, bool)
    matched_p = (iou[1:, 1:] > 0.5).any(0) if nt > 1 else np.zeros(npred - 1, bool)
    counts["true"] += nt - 1
    counts["matched"] += int(matched_t.sum())
    for i in np.flatnonzero(~matched_t) + 1:
        best = int(np.argmax(overlap[i, 1:])) + 1 if npred > 1 else 0
        if best == 0 or overlap[i, 0] > 0.5 * ta[i]:
            counts["missed"] += 1
        elif (overlap[1:, best] > 0.5 * ta[1:]).sum() >= 2:
            counts["merged"] += 1
        else:
            counts["poorly drawn"] += 1
    for j in np.flatnonzero(~matched_p) + 1:
        inside = int(np.argmax(overlap[1:, j])) + 1 if nt > 1 else 0
        if inside == 0 or overlap[0, j] > 0.5 * pa[j]:
            counts["spurious"] += 1
        elif (overlap[inside, 1:] > 0.2 * ta[inside]).sum() >= 2:
            counts["split"] += 1
        else:
            counts["spurious"] += 1
    return counts


def main(folder: Path) -> None:
    model = resolve_model(sys.argv[2] if len(sys.argv) > 2 else "assets/model", fallback=False)
    scores = collections.defaultdict(lambda: collections.defaultdict(list))
    errors = collections.defaultdict(collections.Counter)
    for path in sorted(folder.glob("*.pkl")):
        record = pickle.loads(path.read_bytes())
        prediction, truth, kind = record["prediction"], record["truth"], record["kind"]
        settings = scaled_settings(model.postprocess_settings, prediction)
        shipped = instance_labels(prediction.probabilities, settings)
        for group in ("all", kind, f"group {record['group']}"):
            scores["shipped"][group].append(image_scores(truth, shipped).mean_ap)
        errors[kind] += error_kinds(truth, shipped)
        for h, gate in VARIANTS:
            labels = labels_with_split(prediction.probabilities, settings, h / prediction.factor, gate)
            for group in ("all", kind, f"group {record['group']}"):
                scores[f"h={h:.0f}px >{gate}x"][group].append(image_scores(truth, labels).mean_ap)
    print("error kinds of the shipped post-processing (true nuclei; unmatched predictions)")
    for kind, counts in errors.items():
        print(f"  {kind:13s} " + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    groups = sorted(scores["shipped"], key=lambda g: (g.startswith("group"), g))
    print("mean AP (images)")
    print(f"  {'':16s}" + "".join(f"{g[:14]:>16s}" for g in groups if not g.startswith("group")))
    for name, by_group in scores.items():
        print(f"  {name:16s}" + "".join(f"{np.mean(by_group[g]):>11.4f} ({len(by_group[g]):3d})"
                                        for g in groups if not g.startswith("group")))
    print("per source group: every variant, in the order above")
    for g in groups:
        if g.startswith("group"):
            row = "  ".join(f"{np.mean(scores[n][g]):.3f}" for n in scores)
            print(f"  {g:10s} n={len(scores['shipped'][g]):3d}  {row}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
