"""The run's record in the output folder: ``measurements.csv`` and ``summary.csv``, written as
each image finishes (an interrupted run keeps what it finished), and read back by
``--skip-existing`` to resume without redoing finished images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import pandas as pd

from .exports import FORMATS
from .results import csv_bytes, unquoted

MEASUREMENTS_FILE = "measurements.csv"
SUMMARY_FILE = "summary.csv"
SUMMARY_COLUMNS = ["image", "file", "width", "height", "nuclei", "diameter_px", "diameter_source", "channel",
                   "seconds", "status", "notes"]


def summary_row(path, name: str, width=None, height=None, nuclei=None, diameter=None, source="", channel="",
                seconds=None, status="ok", notes: list[str] = ()) -> dict:
    """One input's row of summary.csv (the CLI's, and the app's ZIP); ``notes``: what the user
    should know about the image (how it was read, a diameter given that looks wrong), as the
    log line says them."""
    return dict(zip(SUMMARY_COLUMNS, [name, str(path), width, height, nuclei, diameter, source, channel,
                                      None if seconds is None else round(seconds, 2), status, "; ".join(notes)]))


def expected_files(name: str, formats: tuple[str, ...]) -> list[str]:
    return [name + suffix for fmt in formats for suffix in FORMATS[fmt]]


class Earlier(NamedTuple):
    """What a resumed run takes over from the record of the run before."""
    done: dict[str, dict]      # NAME -> summary row of each image finished (see finished_before)
    measurements: pd.DataFrame  # their measurement rows
    names: dict[str, str]      # resolved input path -> the NAME it was given, for every image named


NOTHING_EARLIER = Earlier({}, pd.DataFrame(), {})


def finished_before(summary_file, measurements_file, outputs_present: Callable[[str], bool]) -> Earlier:
    """The rule ``--skip-existing`` resumes by, wherever the record is (a folder or a URL):
    images whose summary row is "ok" and whose files are all present, with their earlier
    summary rows and measurement rows; and every named input's NAME, so that names stay put.
    Reads and closes the two open files."""
    with summary_file, measurements_file:
        summary = pd.read_csv(summary_file, dtype={"image": str, "file": str, "status": str}, keep_default_na=False)
        measurements = pd.read_csv(measurements_file, dtype={"image": str}, keep_default_na=False)
    if "file" not in summary:  # a summary.csv edited by hand: nothing to keep names by
        summary = summary.assign(file="")
    # The cells as written, before the quote that keeps spreadsheets from running "-ctrl" or
    # "=A1" as formulas: the names are matched against files named that way.
    summary = summary.assign(image=unquoted(summary["image"]), file=unquoted(summary["file"]))
    measurements = measurements.assign(image=unquoted(measurements["image"]))
    finished = summary[(summary["status"] == "ok") & summary["image"].map(outputs_present)]
    kept = measurements[measurements["image"].isin(set(finished["image"]))]
    named = summary[(summary["image"] != "") & (summary["file"] != "")]
    names = {str(Path(file).resolve()): name for file, name in zip(named["file"], named["image"])}
    return Earlier({row["image"]: row for row in finished.to_dict("records")}, kept, names)


class RunRecord:
    """Appends one image's measurement rows, then its summary row (so a summary row "ok" means
    the image's measurements are complete). With ``resume``, rows of images that finished
    before (summary "ok" and every output file present) are kept and those images skipped;
    rows of anything else are dropped, to be written again."""

    def __init__(self, out: Path, measurement_columns: list[str], formats: tuple[str, ...], resume: bool = False):
        self.out, self.formats = out, formats
        self.measurements_path, self.summary_path = out / MEASUREMENTS_FILE, out / SUMMARY_FILE
        self.measurement_columns = measurement_columns
        earlier = self._finished_before() if resume else NOTHING_EARLIER
        self.done = earlier.done                  # image name -> its earlier summary row
        self.earlier_names = earlier.names        # input path -> the name it had (kept on resuming)
        self._start(self.measurements_path, earlier.measurements.reindex(columns=measurement_columns))
        self._start(self.summary_path, pd.DataFrame(list(self.done.values()), columns=SUMMARY_COLUMNS))

    def is_done(self, name: str) -> bool:
        return name in self.done

    def add(self, summary: dict, measurements: pd.DataFrame | None = None) -> None:
        if summary.get("status") != "ok" and summary.get("image"):
            self.remove_outputs(summary["image"])
        if measurements is not None and len(measurements):
            self._append(self.measurements_path, measurements.reindex(columns=self.measurement_columns))
        self._append(self.summary_path, pd.DataFrame([summary], columns=SUMMARY_COLUMNS))

    def remove_outputs(self, name: str) -> None:
        """Removes the files this run writes for image ``name`` (an earlier run's, or this
        run's cut short), so that the folder never holds them for an image summary.csv says
        failed: a re-run in which an image failed used to leave the run before's labels beside
        its failed row. Only this run's formats: a file of another format by the same name may
        be the user's own (a ground truth named X_labels.tif). Best effort: what can't be
        removed stays."""
        for file in expected_files(name, self.formats):
            try:
                (self.out / file).unlink(missing_ok=True)
            except OSError:
                pass

    def _finished_before(self) -> Earlier:
        if not (self.summary_path.is_file() and self.measurements_path.is_file()):
            return NOTHING_EARLIER
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
