"""Segmentation metrics, shared by training evaluation, the CLI and the app.

Pixel metrics (accuracy, IoU, Dice) compare the binary masks. Instance metrics follow the
2018 Data Science Bowl: at each IoU threshold t in 0.50, 0.55, ..., 0.95 a predicted nucleus
is a true positive when its IoU with a ground-truth nucleus exceeds t, and
precision(t) = TP / (TP + FP + FN); the image score is the mean over thresholds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DSB_THRESHOLDS = tuple(np.round(np.arange(0.5, 1.0, 0.05), 2))


@dataclass(frozen=True)
class Matching:
    """Counts at one IoU threshold."""

    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """The DSB 'precision': TP / (TP + FP + FN); 1.0 when both images are empty."""
        total = self.true_positives + self.false_positives + self.false_negatives
        return self.true_positives / total if total else 1.0


@dataclass(frozen=True)
class ImageScores:
    pixel_accuracy: float
    iou: float
    dice: float
    mean_ap: float          # DSB score: mean precision over IoU 0.50..0.95
    ap50: float             # precision at IoU 0.5
    n_true: int
    n_predicted: int

    def as_dict(self) -> dict:
        return asdict(self)


def pixel_scores(true_mask: np.ndarray, predicted_mask: np.ndarray) -> tuple[float, float, float]:
    """(pixel accuracy, IoU, Dice) of two masks (any non-zero value is foreground, as any
    non-zero id is an object); IoU and Dice are 1 when both are empty."""
    true_mask, predicted_mask = np.asarray(true_mask) != 0, np.asarray(predicted_mask) != 0
    _check_shapes(true_mask, predicted_mask)
    intersection = np.logical_and(true_mask, predicted_mask).sum()
    union = np.logical_or(true_mask, predicted_mask).sum()
    total = true_mask.sum() + predicted_mask.sum()
    accuracy = float((true_mask == predicted_mask).mean())
    iou = float(intersection / union) if union else 1.0
    dice = float(2 * intersection / total) if total else 1.0
    return accuracy, iou, dice


def iou_matrix(true_labels: np.ndarray, predicted_labels: np.ndarray) -> np.ndarray:
    """IoU of every (true object, predicted object) pair, shape (n_true, n_predicted).

    Works on any ids (relabelled internally); one pass over the pixels via a contingency table.
    """
    return _iou_table(true_labels, predicted_labels)[0]


def _iou_table(true_labels: np.ndarray, predicted_labels: np.ndarray):
    """(IoU matrix, true object ids, predicted object ids), background excluded."""
    _check_shapes(true_labels, predicted_labels)
    true_index, true_ids = _object_index(np.asarray(true_labels))
    pred_index, pred_ids = _object_index(np.asarray(predicted_labels))
    n_true, n_pred = len(true_ids), len(pred_ids)
    true_area = np.bincount(true_index.ravel(), minlength=n_true + 1)[1:]
    pred_area = np.bincount(pred_index.ravel(), minlength=n_pred + 1)[1:]
    # Only pixels inside both an object and a prediction can overlap: the pair table is
    # counted over those alone (a fraction of the image).
    both = (true_index > 0) & (pred_index > 0)
    pairs = (true_index[both] - 1) * n_pred + (pred_index[both] - 1)
    overlap = np.bincount(pairs, minlength=n_true * n_pred).reshape(n_true, n_pred).astype(np.float64)
    union = true_area[:, None] + pred_area[None, :] - overlap
    ious = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
    return ious, true_ids, pred_ids


def _object_index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index image: 0 background, 1..n the objects; the n object ids). Label images with
    non-negative ids of modest size are indexed by counting (linear); any others (negative
    or huge ids) by sorting."""
    flat = labels.ravel()
    if flat.size and np.issubdtype(labels.dtype, np.integer) and flat.min() >= 0 and flat.max() <= 4 * flat.size:
        counts = np.bincount(flat.astype(np.intp, copy=False))
        ids = np.flatnonzero(counts[1:]) + 1
        if len(ids) == len(counts) - 1:    # already 1..n: the labels are their own index
            return labels.astype(np.intp, copy=False), ids
        lookup = np.zeros(len(counts), np.intp)
        lookup[ids] = np.arange(1, len(ids) + 1)
        return lookup[labels], ids
    ids, inverse = np.unique(labels, return_inverse=True)
    objects = ids != 0
    position = np.cumsum(objects) * objects     # 1..n for the objects, 0 for the background
    return position[inverse.reshape(labels.shape)], ids[objects]


def objects_holding_several(true_labels: np.ndarray, predicted_labels: np.ndarray) -> int:
    """How many true objects each hold most of two or more predicted objects: in a binary
    ground truth, where touching nuclei are one object, those it merged (or nuclei the
    prediction split). From the overlapping pixel pairs alone, no object-by-object table."""
    _check_shapes(true_labels, predicted_labels)
    true_index, true_ids = _object_index(np.asarray(true_labels))
    pred_index, _ = _object_index(np.asarray(predicted_labels))
    both = (true_index > 0) & (pred_index > 0)
    pairs, shared = np.unique(pred_index[both].astype(np.int64) * (len(true_ids) + 1) + true_index[both],
                              return_counts=True)
    predicted, true = np.divmod(pairs, len(true_ids) + 1)
    # More than half of a prediction lies in at most one true object.
    held = shared > 0.5 * np.bincount(pred_index.ravel())[predicted]
    return int(np.count_nonzero(np.bincount(true[held]) >= 2))


def match_at_thresholds(true_labels: np.ndarray, predicted_labels: np.ndarray,
                        thresholds=DSB_THRESHOLDS) -> list[Matching]:
    """Matches at each IoU threshold. For t >= 0.5 a pair above t is unique on both sides
    (two disjoint objects cannot both overlap one object by more than half), so counting
    pairs is an exact one-to-one matching."""
    return _matches(iou_matrix(true_labels, predicted_labels), thresholds)


def _matches(ious: np.ndarray, thresholds=DSB_THRESHOLDS) -> list[Matching]:
    n_true, n_pred = ious.shape
    results = []
    for threshold in thresholds:
        if threshold < 0.5:
            raise ValueError("IoU thresholds below 0.5 need an assignment step; use 0.5 or above")
        true_positives = int((ious > threshold).sum())
        results.append(Matching(float(threshold), true_positives, n_pred - true_positives, n_true - true_positives))
    return results


def matched_ids(true_labels: np.ndarray, predicted_labels: np.ndarray, threshold: float = 0.5):
    """(true ids, predicted ids) that are matched at IoU > threshold (>= 0.5: one-to-one)."""
    ious, true_ids, predicted_ids = _iou_table(true_labels, predicted_labels)
    rows, cols = np.nonzero(ious > threshold)
    return true_ids[rows], predicted_ids[cols]


def image_scores(true_labels: np.ndarray, predicted_labels: np.ndarray) -> ImageScores:
    accuracy, iou, dice = pixel_scores(true_labels, predicted_labels)
    ious = iou_matrix(true_labels, predicted_labels)   # one row per true, one column per predicted object
    matches = _matches(ious)
    return ImageScores(
        pixel_accuracy=accuracy, iou=iou, dice=dice,
        mean_ap=float(np.mean([m.precision for m in matches])),
        ap50=matches[0].precision,
        n_true=ious.shape[0],
        n_predicted=ious.shape[1],
    )


def mean_scores(scores: list[ImageScores]) -> dict:
    """Means over images (the DSB data-set score is the mean of image scores)."""
    if not scores:
        return {}
    keys = ("pixel_accuracy", "iou", "dice", "mean_ap", "ap50")
    summary = {key: float(np.mean([getattr(s, key) for s in scores])) for key in keys}
    summary["images"] = len(scores)
    return summary


def _check_shapes(a: np.ndarray, b: np.ndarray) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(f"shapes differ: ground truth {np.shape(a)} vs prediction {np.shape(b)}")
