"""The run's record in the output folder: ``measurements.csv`` and ``summary.csv``, written as
each image finishes (an interrupted run keeps what it finished), and read back by
``--skip-existing`` to resume without redoing finished images.

The record is the folder's, not only the run's: a run into a folder that holds an earlier
run's results keeps the rows of the earlier images it does not segment again (whose files
are still there), so that segmenting one image again does not drop 499 others from the
tables (a user test).

Rows are appended in the order images finish, which on a Dask cluster is not the order of
the inputs; a run that ends puts its own rows in input order (``put_in_order``), after the
rows it kept from before.
"""
from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, NamedTuple, Sequence

import pandas as pd

from .blocks import LABELS_SUFFIX, OVERVIEW_SUFFIX
from .calibration import UM_COLUMNS, PixelSize
from .exports import FORMATS
from .measure import COLUMNS
from .results import csv_bytes, unquoted

MEASUREMENTS_FILE = "measurements.csv"
SUMMARY_FILE = "summary.csv"
SUMMARY_COLUMNS = ["image", "file", "width", "height", "nuclei", "diameter_px", "diameter_source", "channel",
                   "kind", "pixel_size_um", "pixel_size_source", "seconds", "status", "notes", "settings",
                   "file_bytes", "file_modified", "formats"]
# measurements.csv: the image's name, then the measurements in pixels, then in µm (empty
# where the pixel size is unknown).
MEASUREMENT_COLUMNS = ["image"] + COLUMNS + UM_COLUMNS


def summary_row(path, name: str, width=None, height=None, nuclei=None, diameter=None, source="", channel="",
                seconds=None, status="ok", notes: Sequence[str] = (), pixel_size: PixelSize | None = None,
                kind: str = "") -> dict:
    """One input's row of summary.csv (the CLI's, and the app's ZIP); ``notes``: what the user
    should know about the image (how it was read, a diameter given that looks wrong), as the
    log line says them; ``pixel_size``: what its µm measurements were computed with; ``kind``:
    what the image looks like (``kinds.image_kind``), to sort out those the model is weak on."""
    return dict(zip(SUMMARY_COLUMNS, [name, str(path), width, height, nuclei, diameter, source, channel, kind,
                                      pixel_size.um if pixel_size else None, pixel_size.source if pixel_size else "",
                                      None if seconds is None else round(seconds, 2), status, "; ".join(notes)]))


# What a TIFF read lazily, block by block (``batch.is_huge``), gets whatever --formats asks;
# and, where --formats asks for them, the channel intensities.
HUGE_IMAGE_SUFFIXES = (LABELS_SUFFIX, OVERVIEW_SUFFIX)
# The formats a huge image gets (``blocks.segment_in_blocks``: its label TIFF always, and what is
# measured or traced as the blocks are stitched); the PNGs need every label in memory at once.
HUGE_IMAGE_FORMATS = ("tiff", "rois", "geojson", "intensities")


def expected_files(name: str, formats: tuple[str, ...]) -> list[str]:
    return [name + suffix for fmt in formats for suffix in FORMATS[fmt]]


def formats_among(name: str, files) -> str:
    """The formats whose files for image ``name`` are all among ``files`` (names), as the
    summary's ``formats`` column says them: what the app's ZIP holds for it."""
    return ",".join(fmt for fmt in FORMATS if all(file in files for file in expected_files(name, (fmt,))))


def finished_huge(earlier: Earlier, present: set[str], names: Sequence[str],
                  formats: tuple[str, ...] = ()) -> dict[str, dict]:
    """Of ``names`` (huge TIFFs' finished before), those whose files for ``formats`` are
    there: a huge image never has the PNGs of the default --formats, so --skip-existing
    redid it every time (a user test)."""
    asked = [fmt for fmt in HUGE_IMAGE_FORMATS if fmt in formats and fmt != "tiff"]
    suffixes = HUGE_IMAGE_SUFFIXES + tuple(FORMATS[fmt][0] for fmt in asked)
    return {name: earlier.done[name] for name in names if all(name + suffix in present for suffix in suffixes)}


def stale_files(earlier: Earlier, name: str, formats: tuple[str, ...], present: set[str]) -> list[str]:
    """The files of image ``name`` (segmented again by this run) that the run that segmented
    it before wrote (its row's ``formats``) in formats this run does not write: they would
    not match the new results (a trial: a run with --formats png after --formats all left the
    ROIs and GeoJSON of the old labels beside the new PNGs and measurements, and
    --skip-existing then took them for done). A file of such a name that run did not write
    (the user's own ground truth, say), or any where its row predates the column, stays."""
    written = str(earlier.done.get(name, {}).get("formats") or "").split(",")
    others = tuple(fmt for fmt in written if fmt in FORMATS and fmt not in formats)
    return [file for file in expected_files(name, others) if file in present]


def remove_stale(record, summary: dict) -> None:
    """``add`` of both records (``RunRecord``, ``output_folder.UrlRecord``): for an image
    segmented (an "ok" row), removes its ``stale_files`` and keeps their names in
    ``record.removed``, for the run to say."""
    if summary.get("status") == "ok" and summary.get("image"):
        # The formats written for this image, not the run's: a huge TIFF's label TIFF, just
        # written whatever was asked, was otherwise taken for stale.
        written = tuple(written_formats(summary, record.formats).split(","))
        record.removed += record.remove_files(stale_files(record.earlier, summary["image"], written, record.present))


def written_formats(summary: dict, formats: tuple[str, ...]) -> str:
    """The formats of the files written for an image segmented: the run's, unless its row says
    (a huge TIFF gets its label TIFF whatever was asked, ``batch.huge_written``)."""
    return summary.get("formats") or ",".join(formats)


def on_record_with(summary: dict, settings: str, formats: tuple[str, ...]) -> dict:
    """A row as the output folder's record keeps it (``on_record``), with the run's settings
    and, for an image segmented, the formats of the files written for it (the run's, unless
    the row says: a huge TIFF gets its label TIFF whatever was asked, ``batch.huge_written``)."""
    row = on_record(with_settings(summary, settings))
    return {**row, "formats": written_formats(row, formats)} if row.get("status") == "ok" else row


def with_settings(summary: dict, settings: str) -> dict:
    """An image's row with the run's settings, where it was segmented (not a failed one)."""
    return {**summary, "settings": settings} if summary.get("status") == "ok" and settings else summary


def changed_settings(done: dict[str, dict], names: list[str], settings: str) -> list[str]:
    """The images among ``names`` finished before (``done``) whose rows record other settings
    than ``settings`` (rows from before the settings were recorded say nothing: not counted)."""
    return [name for name in names if name in done and done[name].get("settings") not in ("", None, settings)]


def segmented_again(earlier: Earlier, done: dict[str, dict], names: list[str]) -> list[str]:
    """The images among ``names`` finished before (``earlier``: an ok row and the files of
    some format) that --skip-existing does not count as done (``done``): files this run
    writes are missing (another --formats, or a huge TIFF's overview)."""
    return [name for name in names if name in earlier.done and name not in done]


def has_outputs(name: str, formats: tuple[str, ...] | None, exists: Callable[[str], bool]) -> bool:
    """Every file of ``formats`` for image ``name`` is there; ``formats`` None: every file of
    at least one format (an earlier run's, whichever it wrote)."""
    if formats is None:
        return any(has_outputs(name, (fmt,), exists) for fmt in FORMATS)
    return all(exists(file) for file in expected_files(name, formats))


def without_redone(earlier: Earlier, redone: list[tuple[str, str]], covered: Sequence[str] = ()
                   ) -> tuple[dict[str, dict], list[dict], pd.DataFrame]:
    """The earlier rows of the inputs a run does not segment again: (finished images' summary
    rows by NAME, failed inputs' summary rows, the finished images' measurements). ``redone``:
    (NAME, resolved input path) of each input it segments or reports ("" as the NAME of an
    input it can't use). An image goes by either: its old name or its file (whose name may
    have changed). A failed input's row stays until the input is run again, or a folder
    holding it is (``covered``: the resolved paths given to the run; a user test: a rerun of
    one image into the folder dropped the rows of the two inputs that had failed)."""
    names, files = {name.casefold() for name, _ in redone if name}, {file for _, file in redone}
    kept = {name: row for name, row in earlier.done.items() if not _is_redone(row, names, files)}
    failed = [row for row in earlier.failed
              if not (_is_redone(row, names, files) or _lies_under(row["file"], covered))]
    measurements = earlier.measurements
    return kept, failed, (measurements[measurements["image"].isin(set(kept))] if "image" in measurements
                          else measurements)


def _is_redone(row: dict, names: set[str], files: set[str]) -> bool:
    return (bool(row["image"]) and row["image"].casefold() in names) or (
        bool(row["file"]) and str(Path(row["file"]).resolve()) in files)


def _lies_under(file: str, folders: Sequence[str]) -> bool:
    path = Path(file).resolve() if file else None
    return path is not None and any(path == Path(folder) or Path(folder) in path.parents for folder in folders)


def on_record(summary: dict) -> dict:
    """A summary row as the output folder's record keeps it: ``file`` absolute, so that a
    later run started from another folder still knows the input, and the input's size and
    modification time, so that --skip-existing knows a file changed since (the app's rows
    name the upload instead, and don't come here)."""
    if not summary.get("file"):
        return summary
    file = os.path.abspath(summary["file"])
    size, modified = input_stamp(file)
    return {**summary, "file": file, "file_bytes": size, "file_modified": modified}


def input_stamp(file: str | Path) -> tuple[str, str]:
    """(size in bytes, modification time as ISO 8601 UTC to the microsecond) of an input
    file, as text; ("", "") where it can't be read. Text, not numbers: a summary written whole
    with an empty size beside the others made the column float, written as 1.234568e+08,
    and every large input then read as changed (a review)."""
    try:
        status = os.stat(file)
    except OSError:
        return "", ""
    modified = datetime.fromtimestamp(status.st_mtime, timezone.utc).isoformat(timespec="microseconds")
    return str(status.st_size), modified


def changed_inputs(done: dict[str, dict], files: dict[str, Path]) -> list[str]:
    """The names among ``files`` (NAME -> the input file this run gives it) finished before
    (``done``) whose file is no longer what was segmented: another size or modification time
    than their summary row records (an image exported again, or replaced under the same
    name). Rows from before the record kept these say nothing: not counted."""
    changed = []
    for name, file in files.items():
        row = done.get(name)
        if row is None or row.get("file_bytes") in ("", None) or not row.get("file_modified"):
            continue
        if input_stamp(file) != (str(row["file_bytes"]), row["file_modified"]):
            changed.append(name)
    return changed


class Earlier(NamedTuple):
    """What a run takes over from the record of the runs before."""
    done: dict[str, dict]      # NAME -> summary row of each image finished (see finished_before)
    measurements: pd.DataFrame  # their measurement rows
    names: dict[str, str]      # resolved input path -> the NAME it was given, for every image named
    unreadable: str = ""       # why the record there could not be read (it is then started afresh)
    failed: tuple[dict, ...] = ()  # the summary rows of the inputs that failed


NOTHING_EARLIER = Earlier({}, pd.DataFrame(), {})


def readable_record(read: Callable[[], Earlier]) -> Earlier:
    """``read()``, or nothing earlier where the folder's record can't be read (an empty file
    left by a full disk, another tool's summary.csv): the run starts it afresh, and says why."""
    try:
        return read()
    except (ValueError, KeyError, OSError) as error:  # pandas' parser errors are ValueErrors
        return NOTHING_EARLIER._replace(unreadable=f"{type(error).__name__}: {error}".strip().rstrip(":"))


def record_in(present: set[str], open_file: Callable[[str], BinaryIO]) -> Earlier:
    """The record of an output folder (local or a URL) holding the files named ``present``,
    opened by name with ``open_file``: its finished images whose files of some format are
    there (``finished_before``); nothing where it has no record."""
    if not {SUMMARY_FILE, MEASUREMENTS_FILE} <= present:
        return NOTHING_EARLIER
    return readable_record(lambda: finished_before(open_file(SUMMARY_FILE), open_file(MEASUREMENTS_FILE),
                                                   lambda name: has_outputs(name, None, present.__contains__)))


def resumed(earlier: Earlier, formats: tuple[str, ...], present: set[str], resume: bool
            ) -> tuple[dict[str, dict], dict[str, str]]:
    """(done, names) of a run: with ``resume``, the earlier images with every file of this
    run's ``formats`` there (skipped, their rows kept) and the NAME each input had; without
    it, nothing (every input is segmented, and named afresh)."""
    if not resume:
        return {}, {}
    return ({name: row for name, row in earlier.done.items() if has_outputs(name, formats, present.__contains__)},
            earlier.names)


def finished_before(summary_file, measurements_file, outputs_present: Callable[[str], bool]) -> Earlier:
    """The images of the record in an output folder (local or a URL) whose summary row is "ok"
    and whose files are there (``outputs_present``), with their summary rows and measurement
    rows; and every named input's NAME, so that names stay put on resuming. Reads and closes
    the two open files."""
    with summary_file, measurements_file:
        summary = pd.read_csv(summary_file, dtype={"image": str, "file": str, "status": str, "file_bytes": str,
                                                   "file_modified": str, "formats": str}, keep_default_na=False)
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
    failed = tuple(summary[summary["status"] != "ok"].to_dict("records"))
    return Earlier({row["image"]: row for row in finished.to_dict("records")}, kept, names, failed=failed)


class RunRecord:
    """Appends one image's measurement rows, then its summary row (so a summary row "ok" means
    the image's measurements are complete). ``begin`` starts the files with the earlier rows
    of images finished before (summary "ok" and their files present) that this run doesn't
    segment again. With ``resume``, this run's images finished before with every file of its
    formats are skipped (and their rows kept)."""

    def __init__(self, out: Path, measurement_columns: list[str], formats: tuple[str, ...], resume: bool = False,
                 settings: str = ""):
        self.out, self.formats, self.settings, self.resume = out, formats, settings, resume
        self.measurements_path, self.summary_path = out / MEASUREMENTS_FILE, out / SUMMARY_FILE
        self.measurement_columns = measurement_columns
        self.present = set(os.listdir(out)) if out.is_dir() else set()  # one listing, not a stat per file
        self.earlier = record_in(self.present, lambda name: (out / name).open("rb"))
        # image name -> its earlier summary row; input path -> the name it had
        self.done, self.earlier_names = resumed(self.earlier, formats, self.present, resume)
        self.begun = False
        self.removed: list[str] = []  # files of other formats an earlier run wrote, removed (``add``)
        # Where this run's rows are in the two files: (image name, measurements' byte span or
        # None, summary's byte span), in the order they were appended.
        self.appended: list[tuple[str, tuple[int, int] | None, tuple[int, int]]] = []

    def begin(self, redone: Sequence[tuple[str, str]] = (), covered: Sequence[str] = (),
              ours: Sequence[str] = ()) -> tuple[list[str], int]:
        """Starts both files with the earlier rows of the inputs not in ``redone`` (see
        ``without_redone``), before any row of this run is added; returns the names of the
        finished images kept and the number of failed inputs kept. The kept rows of this
        run's own images (``ours``: --skip-existing keeps them) go in as this run's rows, so
        that ``put_in_order`` puts them in input order too."""
        kept, failed, measurements = without_redone(self.earlier, list(redone), covered)
        rows, others, resumed_rows = split_kept(kept, measurements, ours)
        self._start(self.measurements_path, others.reindex(columns=self.measurement_columns))
        self._start(self.summary_path, pd.DataFrame(rows + failed, columns=SUMMARY_COLUMNS))
        self.begun, self.appended = True, []
        for name, (row, table) in resumed_rows.items():
            self._record(row, table)
        return list(kept), len(failed)

    def is_done(self, name: str) -> bool:
        return name in self.done

    def add(self, summary: dict, measurements: pd.DataFrame | None = None) -> None:
        if not self.begun:
            self.begin()
        summary = on_record_with(summary, self.settings, self.formats)
        if summary.get("status") != "ok" and summary.get("image"):
            self.remove_outputs(summary["image"])
        remove_stale(self, summary)  # its new files are written: the earlier run's of other formats go
        self._record(summary, measurements)

    def _record(self, summary: dict, measurements: pd.DataFrame | None) -> None:
        """Appends an image's rows as they are, and where they went."""
        measured = None
        if measurements is not None and len(measurements):
            measured = self._append(self.measurements_path, measurements.reindex(columns=self.measurement_columns))
        summarised = self._append(self.summary_path, pd.DataFrame([summary], columns=SUMMARY_COLUMNS))
        self.appended.append((summary.get("image") or "", measured, summarised))

    def put_in_order(self, names: Sequence[str]) -> None:
        """Rewrites both files with this run's rows in the order of ``names`` (rows of other
        names, inputs that could not be read, first), after the rows kept from before. Only
        bytes are moved, so every row stays as written; each file is replaced whole."""
        order = in_order([name for name, _, _ in self.appended], names)
        if order == list(range(len(self.appended))):
            return
        measured = [self.appended[i][1] for i in order if self.appended[i][1] is not None]
        _rewrite(self.measurements_path, measured)
        _rewrite(self.summary_path, [self.appended[i][2] for i in order])
        self.appended = [self.appended[i] for i in order]

    def remove_outputs(self, name: str) -> None:
        """Removes the files this run writes for image ``name`` (an earlier run's, or this
        run's cut short), so that the folder never holds them for an image summary.csv says
        failed: a re-run in which an image failed used to leave the run before's labels beside
        its failed row. Only this run's formats: a file of another format by the same name may
        be the user's own (a ground truth named X_labels.tif). Best effort: what can't be
        removed stays."""
        self.remove_files(expected_files(name, self.formats))

    def remove_files(self, files: Sequence[str]) -> list[str]:
        """Removes ``files`` of the output folder; best effort: what can't be removed (a file
        held open on Windows) stays. Returns those removed."""
        removed = []
        for file in files:
            try:
                (self.out / file).unlink()
                removed.append(file)
            except OSError:
                pass
        return removed

    @staticmethod
    def _start(path: Path, rows: pd.DataFrame) -> None:
        path.write_bytes(csv_bytes(rows))

    @staticmethod
    def _append(path: Path, rows: pd.DataFrame) -> tuple[int, int]:
        """Appends the rows; returns where they are in the file (start and end byte)."""
        with path.open("ab") as handle:
            start = handle.tell()
            handle.write(csv_bytes(rows, header=False))
            return start, handle.tell()


def split_kept(kept: dict[str, dict], measurements: pd.DataFrame, ours: Sequence[str]
               ) -> tuple[list[dict], pd.DataFrame, dict[str, tuple[dict, pd.DataFrame]]]:
    """Kept rows apart: (the summary rows and measurements of images not in ``ours``,
    {name: (summary row, measurements)} of those in it)."""
    ours = set(ours)
    mine = [name for name in kept if name in ours]
    others = [row for name, row in kept.items() if name not in ours]
    if not mine:
        return others, measurements, {}
    column = measurements["image"] if "image" in measurements else pd.Series("", index=measurements.index)
    tables = dict(tuple(measurements[column.isin(mine)].groupby("image", sort=False)))
    return (others, measurements[~column.isin(mine)],
            {name: (kept[name], tables.get(name, measurements.iloc[:0])) for name in mine})


def in_order(appended: Sequence[str], names: Sequence[str]) -> list[int]:
    """The positions of ``appended`` (image names, as rows were added) sorted by where each
    name is in ``names``; names not there first, in the order they came."""
    rank = {name: position for position, name in enumerate(names)}
    return sorted(range(len(appended)), key=lambda i: rank.get(appended[i], -1))


def _copy_span(source: BinaryIO, target: BinaryIO, begin: int, end: int, chunk: int = 1 << 20) -> None:
    """Bytes ``begin`` to ``end`` of ``source``, a MB at a time (a whole slide's rows can be
    hundreds of MB)."""
    source.seek(begin)
    while begin < end:
        data = source.read(min(chunk, end - begin))
        if not data:
            raise OSError(f"{source.name} ended before byte {end}")
        target.write(data)
        begin += len(data)


def _rewrite(path: Path, spans: list[tuple[int, int]]) -> None:
    """``path`` with the byte ``spans`` (together, everything after the file's first span)
    in the given order; written beside it and moved over it, so an interruption leaves the
    old file whole."""
    if not spans:
        return
    start = min(begin for begin, _ in spans)
    temporary = path.with_name(path.name + ".ordering")
    try:
        with path.open("rb") as source, temporary.open("wb") as target:
            for begin, end in [(0, start)] + spans:  # the header and the rows kept from before first
                _copy_span(source, target, begin, end)
        shutil.copymode(path, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
