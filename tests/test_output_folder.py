"""A run's output folder, local or a URL (fsspec's in-memory file system standing in for an
object store): files whole or not at all, leftovers removed, the record written whole and
resumed."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fsspec", reason="fsspec is not installed: pip install -r requirements-cli.txt")

from nuclei_app import output_folder  # noqa: E402
from nuclei_app.records import SUMMARY_COLUMNS  # noqa: E402


def test_files_appear_whole_and_leftovers_are_removed(tmp_path):
    url = output_folder.output_url(tmp_path / "out")
    (tmp_path / "out").mkdir()
    output_folder.write_files(url, {"a.bin": b"1" * 1000, "b.bin": b"2"}, run_id="run1")
    (tmp_path / "out" / ".a.bin.run1-123-abcd.part").write_bytes(b"partial")  # a killed worker's
    (tmp_path / "out" / ".a.bin.other-123-abcd.part").write_bytes(b"another run's, still writing")
    output_folder.remove_leftovers(url, "run1")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".a.bin.other-123-abcd.part", "a.bin", "b.bin"]
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"1" * 1000


def test_output_urls_for_the_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_folder.output_url("results") == str(tmp_path / "results")  # workers have their own cwd
    assert output_folder.output_url(f"file://{tmp_path}/r") == str(tmp_path / "r")
    assert output_folder.output_url("s3://bucket/run1") == "s3://bucket/run1"
    assert output_folder.local_folder(str(tmp_path)) == tmp_path and output_folder.local_folder("s3://b/r") is None


def test_a_url_output_is_recorded_whole_and_resumes():
    """An object store (here fsspec's in-memory one) can't append: the record is written at the end."""
    import fsspec

    url = "memory://nuclei-test/run"
    row = {"image": "a", "file": "a.png", "nuclei": 1, "status": "ok"}
    with output_folder.run_record(url, ("png",), resume=False) as record:   # finished b, a: recorded a, b
        record.add({"image": "b", "file": "b.png", "status": "damaged"})
        record.add(row, pd.DataFrame({"image": ["a"], "nucleus": [1]}))
        record.put_in_order(["a", "b"])
    output_folder.write_files(url, {f"a_{kind}.png": b"png" for kind in ("labels", "mask", "overlay")})
    fs = fsspec.filesystem("memory")
    summary = pd.read_csv(fs.open("/nuclei-test/run/summary.csv"))
    assert list(summary["image"]) == ["a", "b"] and list(summary.columns) == SUMMARY_COLUMNS
    with output_folder.run_record(url, ("png",), resume=True) as again:
        assert again.is_done("a") and not again.is_done("b")  # b failed: done again
    assert list(pd.read_csv(fs.open("/nuclei-test/run/measurements.csv"))["image"]) == ["a"]
    output_folder.write_files(url, {f"c_{kind}.png": b"png" for kind in ("labels", "mask", "overlay")})
    with output_folder.run_record(url, ("png",), resume=False) as record:   # c segmented, a kept
        record.begin([("c", "/data/c.png")])
        record.add({"image": "c", "file": "/data/c.png", "status": "ok"}, pd.DataFrame({"image": ["c"], "nucleus": [1]}))
    # b failed and was not run again: its row stays, after the finished images'
    assert list(pd.read_csv(fs.open("/nuclei-test/run/summary.csv"))["image"]) == ["a", "b", "c"]
    with output_folder.run_record(url, ("png",), resume=False) as record:   # a again: its old row goes
        record.begin([("a", "/elsewhere/a.png")])
    assert list(pd.read_csv(fs.open("/nuclei-test/run/summary.csv"))["image"]) == ["c", "b"]
    with output_folder.run_record(url, ("png",), resume=False) as record:   # b's file again, named anew
        record.begin([("b_2", str(Path("b.png").resolve()))])
    assert list(pd.read_csv(fs.open("/nuclei-test/run/summary.csv"))["image"]) == ["c"]
    fs.rm("/nuclei-test", recursive=True)


def test_a_resumed_url_record_puts_its_kept_and_new_rows_in_input_order():
    import fsspec

    url = "memory://nuclei-order/run"
    output_folder.write_files(url, {f"{name}_{kind}.png": b"png" for name in "ac" for kind in ("labels", "mask", "overlay")})
    with output_folder.run_record(url, ("png",), resume=False) as record:   # interrupted: c, then a
        for name in "ca":
            record.add({"image": name, "file": f"/in/{name}.png", "status": "ok"},
                       pd.DataFrame({"image": [name], "nucleus": [1]}))
    with output_folder.run_record(url, ("png",), resume=True) as record:
        record.begin([("b", "/in/b.png")], ours=["a", "b", "c"])
        record.add({"image": "b", "file": "/in/b.png", "status": "ok"}, pd.DataFrame({"image": ["b"], "nucleus": [1]}))
        record.put_in_order(["a", "b", "c"])
    fs = fsspec.filesystem("memory")
    for csv in ("summary.csv", "measurements.csv"):
        assert list(pd.read_csv(fs.open(f"/nuclei-order/run/{csv}"))["image"]) == ["a", "b", "c"], csv
    fs.rm("/nuclei-order", recursive=True)


def test_a_block_wise_image_s_files_reach_a_url_whole_and_only_on_success(tmp_path):
    """The client writes a huge image's files locally, then uploads them (not into memory)."""
    import fsspec

    fs = fsspec.filesystem("memory")
    with output_folder.staged_output("memory://nuclei-staged/run", "r1") as folder:
        (folder / "big_labels.tif").write_bytes(b"t" * 5000)
        (folder / "big_overlay.png").write_bytes(b"png")
    assert fs.cat("/nuclei-staged/run/big_labels.tif") == b"t" * 5000 and not folder.exists()
    with pytest.raises(RuntimeError), output_folder.staged_output("memory://nuclei-staged/failed", "r1") as folder:
        (folder / "big_labels.tif").write_bytes(b"half")
        raise RuntimeError("the image failed half-way")
    assert not fs.exists("/nuclei-staged/failed/big_labels.tif") and not folder.exists()
    fs.rm("/nuclei-staged", recursive=True)
    # A file system without atomic puts: a temporary name, then a rename, nothing left over.
    (tmp_path / "local").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "local" / "x_labels.tif").write_bytes(b"labels")
    output_folder.put_files(str(tmp_path / "out"), [tmp_path / "local" / "x_labels.tif"], "r2")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x_labels.tif"]
