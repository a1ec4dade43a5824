"""Result files for download: the CLI's files for one image, and one ZIP for several."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd

from .imageio import labels_png_bytes, mask_png_bytes, rgb_png_bytes


def image_result_files(name: str, labels: np.ndarray, overlay: np.ndarray, table: pd.DataFrame) -> dict[str, bytes]:
    """The same names as the batch CLI writes (DESIGN.md contract)."""
    return {
        f"{name}_labels.png": labels_png_bytes(labels),
        f"{name}_mask.png": mask_png_bytes(labels),
        f"{name}_overlay.png": rgb_png_bytes(overlay),
        f"{name}_measurements.csv": table.to_csv(index=False, float_format="%.4g").encode(),
    }


def combined_measurements(tables: dict[str, pd.DataFrame]) -> bytes:
    frames = [table.assign(image=name)[["image"] + list(table.columns)] for name, table in tables.items()]
    return pd.concat(frames, ignore_index=True).to_csv(index=False, float_format="%.4g").encode() if frames else b""


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
