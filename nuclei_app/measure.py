"""Per-nucleus measurements, one row per label (scikit-image regionprops; the shape moments
vectorised over all nuclei at once, with regionprops' own formulas)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

from .channelwise import channel_mean

# regionprops names -> column names a biologist reads without a manual
PROPERTIES = {
    "label": "nucleus",
    "area": "area_px",
    "centroid-0": "centroid_y",
    "centroid-1": "centroid_x",
    "perimeter": "perimeter_px",
    "equivalent_diameter_area": "diameter_px",
    "solidity": "solidity",
    "intensity_mean": "mean_intensity",
    "intensity_max": "max_intensity",
}
COLUMNS = ["nucleus", "area_px", "centroid_y", "centroid_x", "perimeter_px", "diameter_px", "major_axis_px",
           "minor_axis_px", "eccentricity", "solidity", "orientation_rad", "mean_intensity", "max_intensity",
           "circularity", "touches_border"]


def intensity_channel(image: np.ndarray) -> np.ndarray:
    """Mean over colour channels of the image as read (in [0, 1]; 16-bit keeps its scale)."""
    return channel_mean(image) if image.ndim == 3 else image


def measure_nuclei(labels: np.ndarray, image: np.ndarray) -> pd.DataFrame:
    """A table with one row per nucleus, in label order; empty (with columns) if none."""
    if labels.max(initial=0) == 0:
        return pd.DataFrame(columns=COLUMNS)
    names = [n for n in {p.split("-")[0] for p in PROPERTIES}]
    table = regionprops_table(labels, intensity_image=intensity_channel(image), properties=names)
    frame = pd.DataFrame(table).rename(columns=PROPERTIES)
    frame = frame.assign(**shape_moments(labels, frame["nucleus"].to_numpy()))
    # 4*pi*area/perimeter^2: 1 for a disk, lower for irregular or elongated nuclei.
    perimeter = frame["perimeter_px"].replace(0, np.nan)
    frame["circularity"] = (4 * np.pi * frame["area_px"] / perimeter**2).clip(upper=1.0).fillna(1.0)
    frame["touches_border"] = touches_border(labels, frame["nucleus"].to_numpy())
    return frame[COLUMNS]


def shape_moments(labels: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Axis lengths, eccentricity and orientation of every nucleus from its central second
    moments, summed for all nuclei in one pass (``np.bincount``) rather than region by region:
    regionprops' per-region moments took half of the measuring time. The formulas are
    regionprops' (inertia tensor [[mu02, -mu11], [-mu11, mu20]] / mu00, axes 4 sqrt(eigenvalue))."""
    rows, columns = np.nonzero(labels)
    owner = labels[rows, columns]
    size = int(ids.max()) + 1

    def total(weights=None) -> np.ndarray:
        return np.bincount(owner, weights, minlength=size)
    count = np.maximum(total(), 1)
    # Two passes: offsets from each nucleus's own centroid, so no precision is lost to large
    # image coordinates (E[x^2] - E[x]^2 cancels badly 10,000 px from the origin).
    dy = rows - (total(rows) / count)[owner]
    dx = columns - (total(columns) / count)[owner]
    mu20, mu02, mu11 = ((total(v) / count)[ids] for v in (dy * dy, dx * dx, dy * dx))
    # Rounding noise snapped to 0: a symmetric nucleus gets regionprops' exact answer wherever
    # it lies (its orientation would otherwise flip between +-pi/2 with the last bit).
    noise = 1e-12 * (mu20 + mu02 + 1.0)
    mu11 = np.where(np.abs(mu11) < noise, 0.0, mu11)
    mu02 = np.where(np.abs(mu02 - mu20) < noise, mu20, mu02)
    a, b, c = mu02, -mu11, mu20                         # regionprops' inertia tensor [[a, b], [b, c]]
    root = np.sqrt(((a - c) / 2) ** 2 + b**2)
    major = np.clip((a + c) / 2 + root, 0, None)
    minor = np.clip((a + c) / 2 - root, 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        eccentricity = np.where(major == 0, 0.0, np.sqrt(np.clip(1 - minor / major, 0, 1)))
    orientation = np.where(a - c == 0, np.where(b < 0, np.pi / 4, -np.pi / 4), 0.5 * np.arctan2(-2 * b, c - a))
    return {"major_axis_px": 4 * np.sqrt(major), "minor_axis_px": 4 * np.sqrt(minor),
            "eccentricity": eccentricity, "orientation_rad": orientation}


def touches_border(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Nuclei cut by the image edge: their area and shape are not the whole nucleus."""
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(ids, edge)


def summary(table: pd.DataFrame, pixels: int) -> dict:
    """Count, coverage and size statistics for the headline numbers, from the measurements
    alone (a large image's labels are never in memory): coverage is the nuclei's total area
    over the image's ``pixels``, which is exactly the labelled fraction of the image."""
    areas = table["area_px"].to_numpy(dtype=float) if len(table) else np.zeros(0)
    return {
        "count": int(len(table)),
        "coverage": float(areas.sum() / pixels),
        "mean_area": float(areas.mean()) if areas.size else 0.0,
        "median_area": float(np.median(areas)) if areas.size else 0.0,
        "std_area": float(areas.std()) if areas.size else 0.0,
    }
