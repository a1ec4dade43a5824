"""A batch run's output folder, local or any fsspec URL the workers can reach (s3://...):
files written whole or not at all, a huge image's files staged locally and uploaded, and the
run's record (measurements.csv, summary.csv) kept where the folder can't be appended to.

Every file is written to a temporary name in the output folder, then renamed (object stores
such as S3 publish an object only once it is complete, so there it is written directly). A
rerun task writes the same bytes to the same names; temporary files left by a killed worker
carry the run's id and are removed by the client at the end. fsspec is imported only when
used: the in-process CLI and the app run without it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

from .records import (MEASUREMENT_COLUMNS, MEASUREMENTS_FILE, SUMMARY_COLUMNS, SUMMARY_FILE, RunRecord, in_order,
                      on_record_with, record_in, remove_stale, resumed, split_kept, without_redone)
from .results import csv_bytes, last_part


TEMPORARY_SUFFIX = ".part"
# Object stores make an object visible only once it is completely uploaded: no rename needed
# (a rename there is a copy and a delete).
ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"}


def output_url(out: str | Path) -> str:
    """``out`` as every worker can use it: a URL as given, a local path made absolute."""
    from fsspec.core import split_protocol

    text = str(out)
    protocol, path = split_protocol(text)
    if protocol not in (None, "file", "local"):
        return text
    return os.path.abspath(os.path.expanduser(path))


def local_folder(out_url: str) -> Path | None:
    """The output folder as a local path, or None for a URL (s3://...)."""
    from fsspec.core import split_protocol

    protocol, path = split_protocol(out_url)
    return Path(path) if protocol in (None, "file", "local") else None


@contextmanager
def staged_output(out_url: str, run_id: str) -> Iterator[Path]:
    """The folder an image's files are written into: the output folder itself when it is
    local; for a URL, a local folder whose files are uploaded once all are written."""
    folder = local_folder(out_url)
    if folder is not None:
        yield folder
        return
    staging = Path(tempfile.mkdtemp(prefix=".nuclei-staging-"))
    try:
        yield staging
        put_files(out_url, sorted(p for p in staging.iterdir() if p.is_file() and not p.name.startswith(".")), run_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_files(out_url: str, files: dict[str, bytes], run_id: str = "client", pause: float = 0.0) -> None:
    """Each file whole or not at all: written under a temporary name in the same folder (so
    that the rename never crosses file systems), then renamed. All of an image's files are
    written before any is renamed, which keeps the window where a death leaves part of an
    image's files short. ``pause``: seconds between the two steps (tests)."""
    publish(out_url, {name: (lambda fs, target, data=data: fs.pipe_file(target, data)) for name, data in files.items()},
            run_id, pause)


def put_files(out_url: str, paths: list[Path], run_id: str) -> None:
    """``write_files`` for local files (a huge image's label TIFF), uploaded without being read into memory."""
    publish(out_url, {p.name: (lambda fs, target, p=p: fs.put_file(str(p), target)) for p in paths}, run_id)


def publish(out_url: str, writers: dict, run_id: str, pause: float = 0.0) -> None:
    """``writers``: file name -> write(fs, path) that writes the file's content at path."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(out_url)
    root = root.rstrip("/")
    if atomic_puts(fs):
        for name, write in writers.items():
            write(fs, f"{root}/{name}")
        return
    temporary = {}
    for name, write in writers.items():
        # The run id lets the client find this run's leftovers; the pid says who left them.
        temporary[name] = f"{root}/.{name}.{run_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}"
        write(fs, temporary[name])
    if pause:
        time.sleep(pause)
    for name, temporary_path in temporary.items():
        fs.mv(temporary_path, f"{root}/{name}")


def atomic_puts(fs) -> bool:
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    return bool(protocols & ATOMIC_PUT_PROTOCOLS)


def is_leftover(file_name: str, run_id: str) -> bool:
    return file_name.startswith(".") and f".{run_id}-" in file_name and file_name.endswith(TEMPORARY_SUFFIX)


def remove_leftovers(out_url: str, run_id: str) -> None:
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(out_url)
    if atomic_puts(fs):
        return
    for path in fs.ls(root, detail=False):
        if is_leftover(last_part(path), run_id):
            fs.rm_file(path)


@contextmanager
def run_record(out_url: str, formats: tuple[str, ...], resume: bool, settings: str = "") -> Iterator:
    """The in-process run's record (``records.RunRecord``: rows appended as images finish,
    ``--skip-existing`` resumes) for a local folder; for a URL, ``UrlRecord``."""
    columns = MEASUREMENT_COLUMNS
    folder = local_folder(out_url)
    if folder is not None:
        yield RunRecord(folder, columns, formats, resume=resume, settings=settings)
        return
    record = UrlRecord(out_url, columns, formats, resume=resume, settings=settings)
    try:
        yield record
    finally:  # also when the run stops: what finished is on record
        record.write()


class UrlRecord:
    """``RunRecord`` for an output folder that is a URL (s3://...): object stores can't append,
    so the rows are kept here and both files written whole when the run ends."""

    def __init__(self, out_url: str, measurement_columns: list[str], formats: tuple[str, ...], resume: bool = False,
                 settings: str = ""):
        from fsspec.core import url_to_fs

        self.out_url, self.formats, self.columns, self.settings = out_url, formats, measurement_columns, settings
        self.resume = resume
        self.fs, self.root = url_to_fs(out_url)
        self.root = self.root.rstrip("/")
        self.present = self._present()
        self.earlier = record_in(self.present, lambda name: self.fs.open(f"{self.root}/{name}", "rb"))
        self.done, self.earlier_names = resumed(self.earlier, formats, self.present, resume)
        self.kept: tuple[list[dict], pd.DataFrame] = ([], pd.DataFrame(columns=measurement_columns))
        self.added: list[tuple[str, pd.DataFrame | None, dict]] = []  # (name, measurements, summary row)
        self.removed: list[str] = []  # as RunRecord's
        self.begin()

    def begin(self, redone: Sequence[tuple[str, str]] = (), covered: Sequence[str] = (),
              ours: Sequence[str] = ()) -> tuple[list[str], int]:
        """``RunRecord.begin``: the earlier rows of the inputs this run doesn't segment again."""
        kept, failed, measurements = without_redone(self.earlier, list(redone), covered)
        rows, others, resumed_rows = split_kept(kept, measurements, ours)
        self.kept = (rows + failed, others.reindex(columns=self.columns))
        self.added = [(name, table.reindex(columns=self.columns) if len(table) else None, row)
                      for name, (row, table) in resumed_rows.items()]
        return list(kept), len(failed)

    def is_done(self, name: str) -> bool:
        return name in self.done

    def add(self, summary: dict, measurements: pd.DataFrame | None = None) -> None:
        table = measurements.reindex(columns=self.columns) if measurements is not None and len(measurements) else None
        remove_stale(self, summary)  # as RunRecord.add
        self.added.append((summary.get("image") or "", table, on_record_with(summary, self.settings, self.formats)))

    def put_in_order(self, names: Sequence[str]) -> None:
        """``RunRecord.put_in_order``."""
        self.added = [self.added[i] for i in in_order([name for name, _, _ in self.added], names)]

    def write(self) -> None:
        rows, measurements = self.kept
        tables = [measurements] + [table for _, table, _ in self.added if table is not None]
        summary = rows + [row for _, _, row in self.added]
        write_files(self.out_url, {MEASUREMENTS_FILE: csv_bytes(pd.concat(tables, ignore_index=True)),
                                   SUMMARY_FILE: csv_bytes(pd.DataFrame(summary, columns=SUMMARY_COLUMNS))})

    def remove_files(self, files: Sequence[str]) -> list[str]:
        """``RunRecord.remove_files``."""
        removed = []
        for file in files:
            try:
                self.fs.rm(f"{self.root}/{file}")
                removed.append(file)
            except Exception:  # noqa: BLE001 - best effort; an object store raises its own errors
                pass
        return removed

    def _present(self) -> set[str]:
        """Names of the files in the output folder."""
        if not self.fs.isdir(self.root):
            return set()
        return {last_part(path) for path in self.fs.ls(self.root, detail=False)}
