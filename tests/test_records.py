"""The run's record (summary.csv, measurements.csv): rows put back in input order."""
import pandas as pd

from nuclei_app.records import MEASUREMENT_COLUMNS, RunRecord, in_order


def nuclei_of(name: str, count: int) -> pd.DataFrame:
    return pd.DataFrame({"image": [name] * count, "label": range(1, count + 1), "area": [10.5] * count})


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
