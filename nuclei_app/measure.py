"""Per-nucleus measurements, one row per label (scikit-image regionprops)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

# regionprops names -> column names a biologist reads without a manual
PROPERTIES = {
    "label": "nucleus",
    "area": "area_px",
    "centroid-0": "centroid_y",
    "centroid-1": "centroid_x",
    "perimeter": "perimeter_px",
    "equivalent_diameter_area": "diameter_px",
    "major_axis_length": "major_axis_px",
    "minor_axis_length": "minor_axis_px",
    "eccentricity": "eccentricity",
    "solidity": "solidity",
    "orientation": "orientation_rad",
    "intensity_mean": "mean_intensity",
    "intensity_max": "max_intensity",
}
COLUMNS = list(PROPERTIES.values()) + ["circularity", "touches_border"]


def intensity_channel(image: np.ndarray) -> np.ndarray:
    """Mean over colour channels of the image as read (in [0, 1]; 16-bit keeps its scale)."""
    return image.mean(axis=-1) if image.ndim == 3 else image


def measure_nuclei(labels: np.ndarray, image: np.ndarray) -> pd.DataFrame:
    """A table with one row per nucleus, in label order; empty (with columns) if none."""
    if labels.max(initial=0) == 0:
        return pd.DataFrame(columns=COLUMNS)
    names = [n for n in {p.split("-")[0] for p in PROPERTIES}]
    table = regionprops_table(labels, intensity_image=intensity_channel(image), properties=names)
    frame = pd.DataFrame(table).rename(columns=PROPERTIES)
    # 4*pi*area/perimeter^2: 1 for a disk, lower for irregular or elongated nuclei.
    perimeter = frame["perimeter_px"].replace(0, np.nan)
    frame["circularity"] = (4 * np.pi * frame["area_px"] / perimeter**2).clip(upper=1.0).fillna(1.0)
    frame["touches_border"] = touches_border(labels, frame["nucleus"].to_numpy())
    return frame[COLUMNS]


def touches_border(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Nuclei cut by the image edge: their area and shape are not the whole nucleus."""
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(ids, edge)


def summary(labels: np.ndarray, table: pd.DataFrame) -> dict:
    """Count, coverage and size statistics for the headline numbers."""
    return summary_of_table(table, labels.size, float((labels > 0).mean()))


def summary_of_table(table: pd.DataFrame, pixels: int, coverage: float | None = None) -> dict:
    """``summary`` from the table alone (an image whose labels are not in memory): coverage
    is the nuclei's total area over the image's pixels."""
    areas = table["area_px"].to_numpy(dtype=float) if len(table) else np.zeros(0)
    return {
        "count": int(len(table)),
        "coverage": float(areas.sum() / pixels) if coverage is None else coverage,
        "mean_area": float(areas.mean()) if areas.size else 0.0,
        "median_area": float(np.median(areas)) if areas.size else 0.0,
        "std_area": float(areas.std()) if areas.size else 0.0,
    }
