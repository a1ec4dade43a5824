"""The run's record in the output folder: ``measurements.csv`` and ``summary.csv``, written as
each image finishes (an interrupted run keeps what it finished), and read back by
``--skip-existing`` to resume without redoing finished images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from .exports import FORMATS
from .results import csv_bytes

MEASUREMENTS_FILE = "measurements.csv"
SUMMARY_FILE = "summary.csv"
SUMMARY_COLUMNS = ["image", "file", "width", "height", "nuclei", "diameter_px", "diameter_source", "channel",
                   "seconds", "status"]


def expected_files(name: str, formats: tuple[str, ...]) -> list[str]:
    return [name + suffix for fmt in formats for suffix in FORMATS[fmt]]


def finished_before(summary_file, measurements_file,
                    outputs_present: Callable[[str], bool]) -> tuple[dict[str, dict], pd.DataFrame]:
    """The rule ``--skip-existing`` resumes by, wherever the record is (a folder or a URL):
    images whose summary row is "ok" and whose files are all present, with their earlier
    summary rows and measurement rows. Reads and closes the two open files."""
    with summary_file, measurements_file:
        summary = pd.read_csv(summary_file, dtype={"image": str, "status": str}, keep_default_na=False)
        measurements = pd.read_csv(measurements_file, dtype={"image": str}, keep_default_na=False)
    finished = summary[(summary["status"] == "ok") & summary["image"].map(outputs_present)]
    kept = measurements[measurements["image"].isin(set(finished["image"]))]
    return {row["image"]: row for row in finished.to_dict("records")}, kept


class RunRecord:
    """Appends one image's measurement rows, then its summary row (so a summary row "ok" means
    the image's measurements are complete). With ``resume``, rows of images that finished
    before (summary "ok" and every output file present) are kept and those images skipped;
    rows of anything else are dropped, to be written again."""

    def __init__(self, out: Path, measurement_columns: list[str], formats: tuple[str, ...], resume: bool = False):
        self.out, self.formats = out, formats
        self.measurements_path, self.summary_path = out / MEASUREMENTS_FILE, out / SUMMARY_FILE
        self.measurement_columns = measurement_columns
        self.done: dict[str, dict] = {}  # image name -> its earlier summary row
        kept_measurements = pd.DataFrame(columns=measurement_columns)
        if resume:
            self.done, kept_measurements = self._finished_before()
        self._start(self.measurements_path, kept_measurements)
        self._start(self.summary_path, pd.DataFrame(list(self.done.values()), columns=SUMMARY_COLUMNS))

    def is_done(self, name: str) -> bool:
        return name in self.done

    def add(self, summary: dict, measurements: pd.DataFrame | None = None) -> None:
        if measurements is not None and len(measurements):
            self._append(self.measurements_path, measurements.reindex(columns=self.measurement_columns))
        self._append(self.summary_path, pd.DataFrame([summary], columns=SUMMARY_COLUMNS))

    def _finished_before(self) -> tuple[dict[str, dict], pd.DataFrame]:
        if not (self.summary_path.is_file() and self.measurements_path.is_file()):
            return {}, pd.DataFrame(columns=self.measurement_columns)
        return finished_before(self.summary_path.open("rb"), self.measurements_path.open("rb"),
                               lambda name: all((self.out / file).is_file()
                                                for file in expected_files(name, self.formats)))

    @staticmethod
    def _start(path: Path, rows: pd.DataFrame) -> None:
        path.write_bytes(csv_bytes(rows))

    @staticmethod
    def _append(path: Path, rows: pd.DataFrame) -> None:
        with path.open("ab") as handle:
            handle.write(csv_bytes(rows, header=False))
