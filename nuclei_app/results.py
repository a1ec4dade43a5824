"""Result files for download: the CLI's files for one image, and one ZIP for several.

Names and CSV cells come from users' file names, so both are made safe here: a name loses
what a file system refuses (path separators: no zip-slip) and keeps the rest as the CLI does
(spaces, any script), so the app's files and rows carry the names a batch run gives the same
files; a CSV cell that a spreadsheet would run as a formula is quoted.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .calibration import PixelSize
from .exports import CSV_FLOAT_FORMAT, export_files, fixed_time_entry
from .imageio import rgb_png_bytes
from .label_files import labels_png_bytes, mask_png_bytes
from .measure import channel_intensities

FILE_SUFFIXES = {"_labels.png": "Labels (16-bit PNG)", "_mask.png": "Mask PNG", "_overlay.png": "Overlay PNG",
                 "_measurements.csv": "Measurements CSV", "_labels.tif": "Labels (TIFF)",
                 "_rois.zip": "ImageJ ROIs", ".geojson": "QuPath GeoJSON",
                 "_intensities.csv": "Channel intensities CSV"}
# Spreadsheets (Excel, LibreOffice, Sheets) evaluate a cell starting with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_NAME_LENGTH = 100
UNSAFE_IN_NAMES = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"{port}{n}" for port in ("COM", "LPT") for n in range(10))}


def last_part(path: str) -> str:
    """The last part of a path written with / or \\ (an upload's name may carry either)."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def safe_name(name: str) -> str:
    """A file stem that is safe everywhere: the name's last path part (no zip-slip) without
    what a file system refuses (Windows: control characters and <>:"/\\|?*, each run of them
    an "_"), a leading dot (a hidden file) or a Windows device name (CON, NUL, COM1, ... get
    an "_"). Spaces, dashes and letters of any script stay: a user test found the app's names
    ("Zellkern_µ_1") unlike the CLI's ("Zellkern µ 1"), so their CSVs did not join on ``image``.
    A CSV cell that reads as a formula is quoted where the CSV is written (``csv_bytes``)."""
    name = UNSAFE_IN_NAMES.sub("_", last_part(name)).lstrip(".")
    if name.split(".")[0].rstrip(" ").upper() in WINDOWS_DEVICES:
        name += "_"
    return name or "image"


def output_stem(file_name: str) -> str:
    """NAME, what a file's outputs are named after, the same in the CLI and the app: its stem
    (``image_stem``), made safe (``safe_name``), within a file system's length (``fitting_name``)."""
    return fitting_name(safe_name(image_stem(last_part(file_name))))


# Bytes of a NAME: the longest output file name adds "_measurements.csv", its temporary
# copy "." and ".partial"; file systems allow 255 bytes.
MAX_NAME_BYTES = 255 - len("._measurements.csv.partial")


def fitting_name(name: str, suffix: str = "", keep_end: bool = False) -> str:
    """``name`` + ``suffix`` within MAX_NAME_LENGTH characters and MAX_NAME_BYTES of UTF-8,
    cutting whole characters off ``name``'s end (``keep_end``: off its start); ``suffix`` stays."""
    room = MAX_NAME_LENGTH - len(suffix)
    name = name[-room:] if keep_end else name[:room]
    while len((name + suffix).encode()) > MAX_NAME_BYTES:
        name = name[1:] if keep_end else name[:-1]
    return name + suffix


def image_stem(file_name: str) -> str:
    """The name outputs are named after: the file's stem, without the ".ome" of an OME-TIFF
    ("plate.ome.tif" -> "plate", not "plate.ome")."""
    stem = Path(file_name).stem
    return stem[:-4] if Path(file_name).suffix.lower() in (".tif", ".tiff") and stem.lower().endswith(".ome") \
        and len(stem) > 4 else stem


def unique_names(file_names: Iterable[str]) -> list[str]:
    """Each file's NAME (``output_stem``), with _2, _3 ... for repeats, as the CLI numbers them
    (case-insensitively: Windows and macOS would merge 'Cells' and 'cells' into one file)."""
    taken, result = set(), []
    for file_name in file_names:
        base = candidate = output_stem(file_name)
        number = 2
        while candidate.casefold() in taken:
            candidate, number = fitting_name(base, f"_{number}"), number + 1
        taken.add(candidate.casefold())
        result.append(candidate)
    return result


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that would run as spreadsheet formulas, prefixed with a quote."""
    risky = {}
    for column in frame.columns:
        cells = frame[column]
        if cells.dtype == object or pd.api.types.is_string_dtype(cells):
            # Each distinct value once: a text column repeats one value (the image's name) on
            # every row, and testing each cell cost a batch ~8 ms per image (py-spy).
            formulas = {value for value in distinct(cells)
                        if isinstance(value, str) and value.startswith(FORMULA_STARTS)}
            if formulas:
                risky[column] = cells.map(lambda value: "'" + value if isinstance(value, str) and value in formulas
                                          else value)
    return frame.assign(**risky) if risky else frame


def distinct(cells: pd.Series):
    """The column's distinct values; every cell where some can't be hashed (a list in a cell)."""
    try:
        return pd.unique(cells)
    except TypeError:
        return cells


def unquoted(cells: pd.Series) -> pd.Series:
    """Text cells as they were before ``neutralise_formulas`` quoted them (read back from a CSV)."""
    text = cells.astype(str)
    quoted = text.str.startswith("'") & text.str[1:2].isin(FORMULA_STARTS)
    return text.where(~quoted, text.str[1:])


def csv_bytes(frame: pd.DataFrame, header: bool = True) -> bytes:
    return neutralise_formulas(frame).to_csv(index=False, header=header, float_format=CSV_FLOAT_FORMAT).encode()


def image_csv(name: str, table: pd.DataFrame) -> bytes:
    """One image's table as CSV with the image's name first, as in a run's measurements.csv, so
    that files concatenate and join on (image, nucleus): ``NAME_intensities.csv``, and the app's
    ``NAME_measurements.csv`` (a user test: per-image downloads put together could not tell
    their images apart)."""
    return csv_bytes(with_image(table, name))


def with_image(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` with the image's name as its first column (replacing one it had)."""
    return table.assign(image=name)[["image"] + [c for c in table.columns if c != "image"]]


def image_result_files(name: str, labels: np.ndarray, overlay: np.ndarray | None, table: pd.DataFrame,
                       formats: tuple[str, ...] = ("png",), measurements: bool = True,
                       pixel_size: PixelSize | None = None, channels: np.ndarray | None = None) -> dict[str, bytes]:
    """One image's files under the batch CLI's names (DESIGN.md contract), for the CLI and
    the app's downloads alike; ``measurements`` adds the image's own CSV (the app's);
    ``pixel_size`` is stored in the label TIFF; ``channels``, the image as read, give
    every channel's intensities ('intensities')."""
    files = {}
    if "png" in formats:
        files.update({f"{name}_labels.png": labels_png_bytes(labels), f"{name}_mask.png": mask_png_bytes(labels),
                      f"{name}_overlay.png": rgb_png_bytes(overlay)})
    if measurements:
        files[f"{name}_measurements.csv"] = image_csv(name, table)
    if "intensities" in formats and channels is not None:
        files[f"{name}_intensities.csv"] = image_csv(name, channel_intensities(labels, channels))
    files.update(export_files(name, labels, table, formats, pixel_size))
    return files


def combined_measurements(tables: dict[str, pd.DataFrame]) -> bytes:
    frames = [with_image(table, name) for name, table in tables.items()]
    return csv_bytes(pd.concat(frames, ignore_index=True)) if frames else b""


def partial_path(path: Path) -> Path:
    """Where a file is written before it is renamed to ``path`` (hidden: no folder scan picks it up)."""
    return path.with_name(f".{path.name}.partial")


def write_atomically(folder: Path, files: dict[str, bytes]) -> None:
    """Each file under a temporary name, then renamed: a file with its final name is whole."""
    for file_name, data in files.items():
        partial = partial_path(folder / file_name)
        try:
            partial.write_bytes(data)
            os.replace(partial, folder / file_name)
        except OSError:  # a full disk, say: no half-written file left behind
            with contextlib.suppress(OSError):
                partial.unlink()
            raise


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(fixed_time_entry(name), data)
    return buffer.getvalue()
