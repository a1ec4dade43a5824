"""The run's record (summary.csv, measurements.csv): rows put back in input order."""
import io
import os

import pandas as pd

from nuclei_app.inputs import RESULTS_HEADER
from nuclei_app.records import (MEASUREMENT_COLUMNS, SUMMARY_COLUMNS, RunRecord, changed_inputs, finished_before,
                                in_order, input_stamp, on_record)
from nuclei_app.results import csv_bytes


def nuclei_of(name: str, count: int) -> pd.DataFrame:
    return pd.DataFrame({"image": [name] * count, "nucleus": range(1, count + 1), "area_px": [10.5] * count})


def test_in_order_ranks_by_the_inputs_and_keeps_unknown_names_first():
    assert in_order(["c", "", "a", "b", "x"], ["a", "b", "c"]) == [1, 4, 2, 3, 0]
    assert in_order([], ["a"]) == []


def test_rows_appended_as_images_finish_end_in_input_order_with_each_row_unchanged(tmp_path):
    """A user test: a Dask run's rows came in the order the workers finished."""
    record = RunRecord(tmp_path, MEASUREMENT_COLUMNS, ("png",))
    record.add({"image": "", "file": "broken.png", "status": "not an image"})   # unreadable: stays first
    for name, count in (("c", 2), ("-ctrl", 1), ("a", 3), ("b", 0)):  # -ctrl: a formula-quoted cell
        record.add({"image": name, "file": f"/in/{name}.png", "nuclei": count, "status": "ok"}, nuclei_of(name, count))
    before = {path: path.read_text().splitlines() for path in (record.summary_path, record.measurements_path)}
    record.put_in_order(["-ctrl", "a", "b", "c"])
    summary = pd.read_csv(record.summary_path, keep_default_na=False)
    assert list(summary["image"]) == ["", "'-ctrl", "a", "b", "c"]
    measurements = pd.read_csv(record.measurements_path)
    assert list(measurements["image"]) == ["'-ctrl", "a", "a", "a", "c", "c"]
    for path, lines in before.items():  # the same header first, the same rows (bytes moved only)
        after = path.read_text().splitlines()
        assert after[0] == lines[0] and sorted(after) == sorted(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["measurements.csv", "summary.csv"]  # nothing left beside


def test_rows_kept_from_an_earlier_run_stay_ahead_of_this_run_s(tmp_path):
    for name in ("old",):
        for kind in ("labels", "mask", "overlay"):
            (tmp_path / f"{name}_{kind}.png").write_bytes(b"png")
    first = RunRecord(tmp_path, MEASUREMENT_COLUMNS, ("png",))
    first.add({"image": "old", "file": "/in/old.png", "nuclei": 1, "status": "ok"}, nuclei_of("old", 1))
    second = RunRecord(tmp_path, MEASUREMENT_COLUMNS, ("png",))
    second.begin([("b", "/in/b.png"), ("a", "/in/a.png")])
    for name in ("b", "a"):
        second.add({"image": name, "file": f"/in/{name}.png", "nuclei": 1, "status": "ok"}, nuclei_of(name, 1))
    second.put_in_order(["a", "b"])
    assert list(pd.read_csv(second.summary_path)["image"]) == ["old", "a", "b"]
    assert list(pd.read_csv(second.measurements_path)["image"]) == ["old", "a", "b"]


def test_a_resumed_run_puts_the_rows_it_keeps_of_its_own_images_in_input_order_too(tmp_path):
    """A review: a Dask run interrupted (rows in the order the workers finished: c, a) and
    resumed with --skip-existing kept c, a ahead of the new b."""
    for name in ("old", "a", "c"):
        for kind in ("labels", "mask", "overlay"):
            (tmp_path / f"{name}_{kind}.png").write_bytes(b"png")
    interrupted = RunRecord(tmp_path, MEASUREMENT_COLUMNS, ("png",))
    for name, count in (("old", 1), ("c", 2), ("a", 1)):
        interrupted.add({"image": name, "file": f"/in/{name}.png", "nuclei": count, "status": "ok"},
                        nuclei_of(name, count))
    resumed = RunRecord(tmp_path, MEASUREMENT_COLUMNS, ("png",), resume=True)
    assert resumed.is_done("a") and resumed.is_done("c") and not resumed.is_done("b")
    resumed.begin([("b", "/in/b.png")], ours=["a", "b", "c"])
    resumed.add({"image": "b", "file": "/in/b.png", "nuclei": 1, "status": "ok"}, nuclei_of("b", 1))
    resumed.put_in_order(["a", "b", "c"])
    assert list(pd.read_csv(resumed.summary_path)["image"]) == ["old", "a", "b", "c"]
    assert list(pd.read_csv(resumed.measurements_path)["image"]) == ["old", "a", "b", "c", "c"]
    assert list(pd.read_csv(resumed.measurements_path)["nucleus"]) == [1, 1, 1, 1, 2]


def test_begin_forgets_rows_added_before_it(tmp_path):
    """A review: add() begins the record itself; a begin() after it rewrote the files but kept
    the earlier rows' byte spans, and put_in_order copied stale bytes."""
    record = RunRecord(tmp_path, MEASUREMENT_COLUMNS, ("png",))
    record.add({"image": "b", "file": "/in/b.png", "nuclei": 1, "status": "ok"}, nuclei_of("b", 1))
    record.begin()
    record.add({"image": "a", "file": "/in/a.png", "nuclei": 1, "status": "ok"}, nuclei_of("a", 1))
    record.put_in_order(["a", "b"])
    assert list(pd.read_csv(record.summary_path)["image"]) == ["a"]


def test_spans_are_copied_a_chunk_at_a_time(tmp_path):
    import io

    from nuclei_app.records import _copy_span

    data = bytes(range(256)) * 10
    source, target = io.BytesIO(data), io.BytesIO()
    _copy_span(source, target, 5, 2000, chunk=7)
    assert target.getvalue() == data[5:2000]


def test_the_record_stamps_each_input_and_tells_which_changed_since(tmp_path):
    """--skip-existing segments again an input whose size or modification time is not the one
    recorded, or that can't be read now; a row without a stamp (an older run's) says nothing."""
    same, edited, touched, old = (tmp_path / f"{name}.png" for name in ("same", "edited", "touched", "old"))
    for path in (same, edited, touched, old):
        path.write_bytes(b"12345")
    rows = {path.stem: on_record({"image": path.stem, "file": str(path), "status": "ok"})
            for path in (same, edited, touched)}
    rows["old"] = {"image": "old", "file": str(old), "file_bytes": "", "file_modified": ""}
    assert rows["same"]["file_bytes"] == "5" and rows["same"]["file_modified"].endswith("+00:00")
    edited.write_bytes(b"123456")
    os.utime(touched, (1e9, 1e9))
    os.utime(old, (1e9, 1e9))
    files = {path.stem: path for path in (same, edited, touched, old)}
    assert changed_inputs(rows, files) == ["edited", "touched"]
    # as read back from summary.csv: every cell a string
    as_read = {name: {key: str(value) for key, value in row.items()} for name, row in rows.items()}
    assert changed_inputs(as_read, files) == ["edited", "touched"]
    assert input_stamp(tmp_path / "gone.png") == ("", "")
    assert changed_inputs(rows, {"same": tmp_path / "gone.png"}) == ["same"]


def test_a_large_input_s_stamp_reads_back_the_same_from_a_summary_written_whole(tmp_path):
    """A review: with a failed row's empty size beside it, a summary written whole (a URL
    output folder's) made the column float, written as 1.234568e+08: every input of 10 MB or
    more read as changed on each resume."""
    large = tmp_path / "slide.tif"
    with open(large, "wb") as handle:
        handle.truncate(123_456_789)   # sparse: no disk used
    rows = [on_record({"image": "slide", "file": str(large), "status": "ok"}),
            on_record({"image": "", "file": str(tmp_path / "typo.tif"), "status": "no such file or folder"})]
    summary = io.BytesIO(csv_bytes(pd.DataFrame(rows, columns=SUMMARY_COLUMNS)))
    measurements = io.BytesIO(csv_bytes(pd.DataFrame(columns=MEASUREMENT_COLUMNS)))
    earlier = finished_before(summary, measurements, lambda name: True)
    assert earlier.done["slide"]["file_bytes"] == "123456789"
    assert changed_inputs(earlier.done, {"slide": large}) == []


def test_the_results_folder_header_is_the_summary_s_first_columns():
    assert RESULTS_HEADER.decode() == ",".join(SUMMARY_COLUMNS[:5]) + ","
