import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from nuclei_app.batch import ImageRequest, segment_paths
from nuclei_app.exports import FORMATS
from nuclei_app.imageio import read_image, to_uint8
from nuclei_app.label_files import read_labels

from .awkward_files import EITHER, ERROR, IGNORED, OK, write_corpus
from .conftest import PROJECT, SAMPLES, fluorescence_like, synthetic_labels


def write_image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(fluorescence_like(synthetic_labels(seed=seed), seed)).save(path)
    return path


def test_skip_existing_keeps_each_file_s_name_when_files_are_added(tiny_model, tmp_path):
    """A file added since the first run, whose name sorts first, must not take an earlier
    file's outputs; names starting like spreadsheet formulas are quoted in the CSVs and still
    recognised as done."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    write_image(inputs / "plate" / "well.png", seed=1)
    write_image(inputs / "-ctrl.png", seed=2)
    first = segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=io.StringIO())
    assert first.exit_status == 0
    well_labels = (out / "well_labels.png").read_bytes()
    write_image(inputs / "plate" / "well.bmp", seed=3)  # sorts before well.png, same stem
    log = io.StringIO()
    again = segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=log, skip_existing=True)
    assert again.exit_status == 0 and "2 of 3 images finished before; 1 to do" in log.getvalue()
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert sorted(summary["file"].map(lambda f: Path(f.lstrip("'")).name)) == ["-ctrl.png", "well.bmp", "well.png"]
    names = dict(zip(summary["file"].map(lambda f: Path(f).name), summary["image"]))
    assert names["well.png"] == "well" and names["well.bmp"] == "well_bmp" and names["-ctrl.png"] == "'-ctrl"
    assert (out / "well_labels.png").read_bytes() == well_labels and (out / "well_bmp_labels.png").is_file()


def test_skip_existing_segments_again_an_image_whose_file_changed_since(tiny_model, tmp_path):
    """A user's resumed run kept the results of an image exported again (another field under
    the same name) since it was segmented: the record now keeps each input's size and
    modification time, and a file that differs is segmented again; rows written before the
    record kept them say nothing, and are kept."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    paths = [write_image(inputs / f"{name}.png", seed=seed) for seed, name in enumerate(("a", "b", "c"))]
    segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=io.StringIO())
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("image")
    assert summary.loc["a", "file_bytes"] == paths[0].stat().st_size and summary.loc["a", "file_modified"]
    summary = summary.astype({"file_bytes": str})
    summary.loc["c", ["file_bytes", "file_modified"]] = ""   # c's row as an older version wrote it
    summary.reset_index().to_csv(out / "summary.csv", index=False)
    b_labels, c_labels = (out / "b_labels.png").read_bytes(), (out / "c_labels.png").read_bytes()
    write_image(paths[1], seed=7)                             # b exported again: another field
    os.utime(paths[2], (1e9, 1e9))                            # c touched: no stamp to compare with
    log = io.StringIO()
    again = segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=log, skip_existing=True)
    text = log.getvalue()
    assert again.exit_status == 0 and again.kept == 2
    assert "segmenting again 1 image whose file changed since it was segmented" in text and "(another size or " \
        "modification time: b)" in text and "2 of 3 images finished before; 1 to do" in text
    assert "not all there" not in text                       # not also reported as missing files
    assert (out / "b_labels.png").read_bytes() != b_labels and (out / "c_labels.png").read_bytes() == c_labels
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("image")
    assert str(summary.loc["b", "file_bytes"]) == str(paths[1].stat().st_size) and len(summary) == 3
    log = io.StringIO()
    segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=log, skip_existing=True)
    assert "changed since" not in log.getvalue() and "3 of 3 images finished before; 0 to do" in log.getvalue()


def test_an_image_segmented_again_loses_its_files_of_other_formats(tiny_model, tmp_path):
    """A trial: --formats png (another threshold) after --formats all left the old labels' ROIs,
    GeoJSON, label TIFF and intensities beside the new PNGs and measurements, and a later
    --skip-existing --formats all took the mixture for done."""
    from dataclasses import replace

    inputs, out = tmp_path / "in", tmp_path / "out"
    for seed, name in enumerate(("a", "b")):
        write_image(inputs / f"{name}.png", seed=seed)
    segment_paths(tiny_model, [inputs], out, ImageRequest(tiny_model.postprocess_settings, formats=tuple(FORMATS)),
                  log=io.StringIO())
    assert (out / "a_rois.zip").is_file() and (out / "b.geojson").is_file()
    log = io.StringIO()
    other = ImageRequest(replace(tiny_model.postprocess_settings, threshold=0.3), formats=("png",))
    segment_paths(tiny_model, [inputs / "a.png"], out, other, log=log)
    assert "Removed 4 files of other --formats that an earlier run wrote for images segmented again" in log.getvalue()
    assert not [f for f in ("a_labels.tif", "a_rois.zip", "a.geojson", "a_intensities.csv") if (out / f).exists()]
    assert (out / "a_labels.png").is_file() and (out / "b_rois.zip").is_file()   # b was not segmented again
    log = io.StringIO()
    again = segment_paths(tiny_model, [inputs], out, replace(other, formats=tuple(FORMATS)), log=log,
                          skip_existing=True)
    assert "segmenting again 1 image finished before whose files for --formats" in log.getvalue()
    assert again.kept == 1 and (out / "a_rois.zip").is_file()


def test_a_run_into_a_used_folder_keeps_the_rows_of_the_images_it_does_not_redo(tiny_model, tmp_path):
    """User test: segmenting one image of a batch again into the same folder dropped every
    other image from summary.csv and measurements.csv, their files left without rows."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    paths = [write_image(inputs / f"{name}.png", seed=seed) for seed, name in enumerate(("a", "b", "c"))]
    segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=io.StringIO())
    first = pd.read_csv(out / "measurements.csv", keep_default_na=False)
    log = io.StringIO()
    again = segment_paths(tiny_model, [paths[1]], out, tiny_model.postprocess_settings, log=log)
    assert again.exit_status == 0
    assert "keep the rows of 2 images segmented into it before and not in this run" in log.getvalue()
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert sorted(summary["image"]) == ["a", "b", "c"] and (summary["status"] == "ok").all()
    measurements = pd.read_csv(out / "measurements.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(measurements.sort_values(["image", "nucleus"]).reset_index(drop=True),
                                  first.sort_values(["image", "nucleus"]).reset_index(drop=True))
    for file in out.glob("c_*"):   # an image whose files are gone is no longer on record
        file.unlink()
    segment_paths(tiny_model, [paths[1]], out, tiny_model.postprocess_settings, log=io.StringIO())
    assert sorted(pd.read_csv(out / "summary.csv")["image"]) == ["a", "b"]


def test_a_rerun_into_a_used_folder_keeps_the_rows_of_inputs_that_failed_until_they_are_run_again(
        tiny_model, tmp_path, monkeypatch):
    """User test: rerunning one image into a folder dropped the rows of the inputs that had
    failed in the first run; the record forgot which inputs failed. A review: inputs given by
    relative paths were matched against the next run's working folder, which duplicated them."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    good = write_image(inputs / "a.png")
    broken = inputs / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    missing = tmp_path / "missing.png"
    monkeypatch.chdir(tmp_path)
    first = segment_paths(tiny_model, [Path("in"), Path("missing.png")], out, tiny_model.postprocess_settings,
                          log=io.StringIO())
    assert first.exit_status == 1
    monkeypatch.chdir(inputs)   # the next run starts elsewhere and names its inputs otherwise
    log = io.StringIO()
    segment_paths(tiny_model, [Path("a.png")], out, tiny_model.postprocess_settings, log=log)
    assert "summary.csv keeps the rows of 2 inputs that failed before and are not in this run" in log.getvalue()
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("file")
    assert sorted(summary.index) == sorted([str(good), str(broken), str(missing)])   # absolute, each once
    assert summary.loc[str(good), "status"] == "ok" and "damaged" in summary.loc[str(broken), "status"]
    broken.unlink()
    write_image(broken)   # mended, and run again: its failed row gives way to the new one
    segment_paths(tiny_model, [Path("broken.png")], out, tiny_model.postprocess_settings, log=io.StringIO())
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("file")
    assert sorted(summary.index) == sorted([str(good), str(broken), str(missing)])
    assert (summary.loc[[str(good), str(broken)], "status"] == "ok").all()
    segment_paths(tiny_model, [good, missing], out, tiny_model.postprocess_settings, log=io.StringIO())
    assert list(pd.read_csv(out / "summary.csv", keep_default_na=False)["file"]).count(str(missing)) == 1
    (inputs / "gone.png").write_bytes(b"not an image")
    segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=io.StringIO())
    (inputs / "gone.png").unlink()   # its folder run again: a failure no longer there leaves the record
    segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=io.StringIO())
    assert str(inputs / "gone.png") not in set(pd.read_csv(out / "summary.csv", keep_default_na=False)["file"])


@pytest.mark.parametrize("summary", [b"", b"Well,Count\nA1,3\n", b"\xff\xfe\x00garbage"])
def test_a_record_that_can_t_be_read_is_started_afresh_and_said(tiny_model, tmp_path, summary):
    """An empty summary.csv left by a full disk, or another tool's, no longer ends every run
    into the folder (every run reads the folder's record now)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_bytes(summary)
    (out / "measurements.csv").write_bytes(b"image,nucleus\n")
    log = io.StringIO()
    result = segment_paths(tiny_model, [write_image(tmp_path / "a.png")], out, tiny_model.postprocess_settings, log=log)
    assert result.exit_status == 0
    assert "summary.csv or measurements.csv could not be read (" in log.getvalue()
    assert list(pd.read_csv(out / "summary.csv")["image"]) == ["a"]


def test_skip_existing_with_other_formats_redoes_its_images_and_keeps_the_others(tiny_model, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    paths = [write_image(inputs / f"{name}.png", seed=seed) for seed, name in enumerate(("a", "b"))]
    segment_paths(tiny_model, [inputs], out, tiny_model.postprocess_settings, log=io.StringIO())
    request = ImageRequest(tiny_model.postprocess_settings, formats=("tiff",))
    log = io.StringIO()
    segment_paths(tiny_model, [paths[0]], out, request, log=log, skip_existing=True)
    # a has no TIFF yet: done again, and the run says why (a user test: it was silent)
    assert ("--skip-existing: segmenting again 1 image finished before whose files for --formats tiff are not all "
            "there (a).") in log.getvalue()
    assert "of 1 images finished before" not in log.getvalue()
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["image"]) == ["a", "b"]                  # b's PNGs are there: its row stays
    assert (out / "a_labels.tif").is_file() and not (out / "b_labels.tif").exists()


def test_skip_existing_counts_a_huge_tiff_finished_with_the_files_it_gets(tiny_model, tmp_path, monkeypatch):
    """A user test: a huge TIFF gets a label TIFF and an overlay whatever --formats asks, so
    --skip-existing looked for its PNGs and segmented it again on every resume."""
    from nuclei_app import batch

    write_image(tmp_path / "in" / "slide.tif", seed=1)
    write_image(tmp_path / "in" / "small.png", seed=2)
    monkeypatch.setattr(batch, "is_huge", lambda path: path.suffix == ".tif")
    out = tmp_path / "out"
    segment_paths(tiny_model, [tmp_path / "in"], out, tiny_model.postprocess_settings, log=io.StringIO())
    assert (out / "slide_labels.tif").is_file() and not (out / "slide_labels.png").exists()
    notes = dict(pd.read_csv(out / "summary.csv", keep_default_na=False)[["image", "notes"]].values)
    assert "too large for --formats png (PNG labels need every label in memory)" in notes["slide"]
    assert "too large" not in notes["small"]
    # What was written, for an image segmented again to remove of its earlier files: its label TIFF.
    formats = dict(pd.read_csv(out / "summary.csv", keep_default_na=False)[["image", "formats"]].values)
    assert formats == {"slide": "tiff", "small": "png"}
    log = io.StringIO()
    again = segment_paths(tiny_model, [tmp_path / "in"], out, tiny_model.postprocess_settings, log=log,
                          skip_existing=True)
    assert "--skip-existing: 2 of 2 images finished before; 0 to do." in log.getvalue(), log.getvalue()
    assert "segmenting again" not in log.getvalue() and again.kept == 2
    (out / "slide_overlay.png").unlink()  # a file of the two missing: done again
    log = io.StringIO()
    segment_paths(tiny_model, [tmp_path / "in"], out, tiny_model.postprocess_settings, log=log, skip_existing=True)
    assert "1 of 2 images finished before; 1 to do." in log.getvalue() and (out / "slide_overlay.png").is_file()


def test_a_huge_tiff_s_rois_and_geojson_are_the_whole_label_image_s(tiny_model, tmp_path, monkeypatch):
    """A trial: a slide got neither (QuPath reads GeoJSON). Traced block by block as the nuclei
    are stitched, they are byte for byte what the finished label image and measurements give."""
    from nuclei_app import batch
    from nuclei_app.exports import geojson_bytes, rois_zip_bytes

    write_image(tmp_path / "in" / "slide.tif", seed=4)
    monkeypatch.setattr(batch, "is_huge", lambda path: True)
    out = tmp_path / "out"
    request = ImageRequest(tiny_model.postprocess_settings, formats=("rois", "geojson"), block_size=64)
    assert segment_paths(tiny_model, [tmp_path / "in"], out, request, log=io.StringIO()).exit_status == 0
    labels = tifffile.imread(out / "slide_labels.tif").astype(np.int32)
    table = pd.read_csv(out / "measurements.csv").drop(columns="image")
    assert labels.max() > 3 and len(table) == labels.max()
    assert (out / "slide.geojson").read_bytes() == geojson_bytes(labels, table)
    assert (out / "slide_rois.zip").read_bytes() == rois_zip_bytes(labels)
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert list(summary["formats"]) == ["tiff,rois,geojson"] and "too large" not in summary["notes"][0]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]   # no partial file left
    (out / "slide.geojson").unlink()   # --skip-existing wants it where this run asks for it
    log = io.StringIO()
    segment_paths(tiny_model, [tmp_path / "in"], out, request, log=log, skip_existing=True)
    assert "segmenting again 1 image finished before whose files for --formats rois,geojson are not all there" \
        in log.getvalue() and (out / "slide.geojson").is_file()
    # Its label TIFF, written whatever was asked, is no stale file of the earlier run's to remove.
    assert (out / "slide_labels.tif").is_file() and "Removed" not in log.getvalue(), log.getvalue()


def test_a_huge_tiff_gets_its_channel_intensities_measured_block_by_block(tiny_model, tmp_path, monkeypatch):
    """--formats intensities wrote nothing for a huge TIFF (every channel in memory was thought
    needed): the blocks measure them as they are stitched, as the whole image would."""
    from nuclei_app import batch
    from nuclei_app.imageio import read_channels
    from nuclei_app.measure import channel_intensities

    labels = synthetic_labels(seed=3)
    marker = np.random.default_rng(1).integers(0, 4000, labels.shape, dtype=np.uint16)
    stack = np.stack([fluorescence_like(labels, 3).astype(np.uint16) * 200, marker])  # (C, Y, X), 16-bit
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "slide.tif", stack)
    monkeypatch.setattr(batch, "is_huge", lambda path: True)
    out = tmp_path / "out"
    request = ImageRequest(tiny_model.postprocess_settings, formats=("intensities",), block_size=64)
    assert segment_paths(tiny_model, [tmp_path / "in"], out, request, log=io.StringIO()).exit_status == 0
    written = pd.read_csv(out / "slide_intensities.csv")
    segmented = tifffile.imread(out / "slide_labels.tif").astype(np.int32)
    expected = channel_intensities(segmented, read_channels(tmp_path / "in" / "slide.tif"))
    assert list(written.columns) == ["image", *expected.columns] and len(written) == segmented.max() > 0
    assert set(written["image"]) == {"slide"}
    np.testing.assert_allclose(written.drop(columns="image").sort_values("nucleus").to_numpy(float),
                               expected.to_numpy(float), rtol=1e-6)
    # --skip-existing wants the intensities too where this run asks for them.
    (out / "slide_intensities.csv").unlink()
    log = io.StringIO()
    segment_paths(tiny_model, [tmp_path / "in"], out, request, log=log, skip_existing=True)
    assert "segmenting again 1 image finished before whose files for --formats intensities are not all there " \
           "(slide)" in log.getvalue(), log.getvalue()
    assert (out / "slide_intensities.csv").is_file()


def test_each_row_records_its_settings_and_skip_existing_tells_when_they_changed(tiny_model, tmp_path):
    """User test: --skip-existing with another threshold kept the earlier images silently, and
    nothing in the folder said that they were segmented otherwise."""
    from dataclasses import replace

    inputs, out = tmp_path / "in", tmp_path / "out"
    for seed, name in enumerate(("a", "b")):
        write_image(inputs / f"{name}.png", seed=seed)
    segment_paths(tiny_model, [inputs / "a.png"], out, tiny_model.postprocess_settings, log=io.StringIO())
    first = pd.read_csv(out / "summary.csv", keep_default_na=False)["settings"][0]
    assert first.startswith(f"model {tiny_model.digest()}; threshold ")
    assert "; min size auto; tta auto; diameter auto; channel auto; precision float32" in first
    other = ImageRequest(replace(tiny_model.postprocess_settings, threshold=0.3), diameter=20.0)
    log = io.StringIO()
    segment_paths(tiny_model, [inputs], out, other, log=log, skip_existing=True)
    assert "--skip-existing: 1 image finished before with other settings (a) are kept as they are" in log.getvalue()
    settings = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("image")["settings"]
    assert settings["a"] == first and "threshold 0.3;" in settings["b"] and "diameter 20 px" in settings["b"]
    log = io.StringIO()
    segment_paths(tiny_model, [inputs / "b.png"], out, other, log=log, skip_existing=True)
    assert "other settings" not in log.getvalue()   # b was segmented with these


def test_each_image_s_line_notes_how_its_file_was_read(tiny_model, tmp_path):
    import tifffile

    (tmp_path / "in").mkdir()
    stack = np.random.default_rng(0).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "in" / "z.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    write_image(tmp_path / "in" / "plain.png")
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", tiny_model.postprocess_settings, log=log)
    lines = {line.split(":")[0].split()[-1]: line for line in log.getvalue().splitlines() if line.startswith("[")}
    assert result.exit_status == 0
    assert "; note: a stack of 4 Z planes: the first is segmented" in lines["z.tif"]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False).set_index("image")
    assert summary.loc["z", "notes"].startswith("a stack of 4 Z planes: the first is segmented")
    # The plain file was read as it is: no note (the tiny model's only score is of an image it trained
    # on, no confidence to quote: a trial's notes called it a validation score).
    assert tiny_model.validation_metrics["validation"] and not tiny_model.scores_for_new_images
    assert summary.loc["plain", "notes"] == "" and "note:" not in lines["plain.png"]


@pytest.mark.parametrize("workers", [None, 1])
def test_a_diameter_given_that_looks_wrong_is_noted_per_image(bundled_model, tmp_path, workers):
    """Two samples at --diameter 90, whose nuclei are 12 and 28 px across (ground truth; user
    test: a diameter typed in µm, or left from another magnification, went by silently)."""
    from nuclei_app.distributed import run_on_cluster

    samples = [SAMPLES / "images" / "fluorescence_sparse.png", SAMPLES / "images" / "fluorescence_dense.png"]
    request = ImageRequest(bundled_model.postprocess_settings, diameter=90.0)
    log = io.StringIO()
    if workers:
        result = run_on_cluster(samples, str(tmp_path), request, str(bundled_model.folder), workers=workers, log=log)
    else:
        result = segment_paths(bundled_model, samples, tmp_path, request, log=log)
    assert result.exit_status == 0
    summary = pd.read_csv(tmp_path / "summary.csv", keep_default_na=False).set_index("image")
    for name in ("fluorescence_sparse", "fluorescence_dense"):
        (line,) = [line for line in log.getvalue().splitlines() if f"{name}.png:" in line]
        assert "; note: the diameter given, 90 px, looks wrong for this image" in line
        assert summary.loc[name, "notes"].startswith("the diameter given, 90 px, looks wrong for this image")


@pytest.mark.parametrize("block_size", [None, 256])
def test_a_strip_is_noted_in_its_line_and_row(bundled_model, tmp_path, block_size):
    strip = read_image(SAMPLES / "images" / "fluorescence_dense.png")[100:124]
    Image.fromarray(to_uint8(strip)).save(tmp_path / "strip.png")
    log = io.StringIO()
    result = segment_paths(bundled_model, [tmp_path / "strip.png"], tmp_path / "out",
                           ImageRequest(bundled_model.postprocess_settings, diameter=16.0, block_size=block_size), log=log)
    assert result.exit_status == 0
    notes = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False)["notes"][0]
    assert notes.startswith("the image is only 24 px tall, 1.5 nucleus diameters (16.0 px given)")
    assert "note: the image is only 24 px tall" in log.getvalue()


@pytest.mark.parametrize("block_size", [None, 256])
def test_a_field_on_a_blank_canvas_is_noted_with_where_it_is(bundled_model, tmp_path, block_size):
    field = to_uint8(read_image(SAMPLES / "images" / "brightfield.png"))
    canvas = np.zeros((2 * field.shape[0], 2 * field.shape[1], 3), np.uint8)
    canvas[10:10 + field.shape[0], 20:20 + field.shape[1]] = field
    Image.fromarray(canvas).save(tmp_path / "exported.png")
    Image.fromarray(field).save(tmp_path / "alone.png")
    log = io.StringIO()
    segment_paths(bundled_model, [tmp_path / "exported.png", tmp_path / "alone.png"], tmp_path / "out",
                  ImageRequest(bundled_model.postprocess_settings, block_size=block_size), log=log)
    notes = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False).set_index("image")["notes"]
    where = f"rows 10-{9 + field.shape[0]} and columns 20-{19 + field.shape[1]}"
    assert notes["exported"].startswith(f"the field of view, {where}, lies on a blank canvas of one value (75% of "
                                        "the image)")
    assert "note: the field of view" in log.getvalue() and "field of view" not in notes["alone"]
    # Nuclei cut by the field's edge are flagged as those cut by the image's edge alone.
    table = pd.read_csv(tmp_path / "out" / "measurements.csv")
    cut = table.groupby("image")["touches_border"].sum()
    assert cut["exported"] == cut["alone"] > 0


@pytest.mark.parametrize("block_size", [None, 256])
def test_an_empty_16_bit_well_gives_no_nuclei_and_says_why(bundled_model, tmp_path, block_size):
    """A user test: a plate's empty well (camera offset 200, read noise 4, every value under
    256) gave 9 "nuclei" of 2 px, enlarged 4x to find them (8.5 s), and a caution that it
    looked like brightfield; wells with three nuclei and with one (too small a share of the
    field to reach the stretch's percentile: a quiet field, segmented first at the model's own
    diameter) give theirs, as does a sparse brightfield well (quiet too: still inverted)."""
    rng = np.random.default_rng(0)
    empty = np.round(200 + rng.normal(0, 4, (384, 384))).astype(np.uint16)
    yy, xx = np.mgrid[:384, :384]

    def disks(image, centres, add, radius=9):
        image = image.copy()
        for cy, cx in centres:
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] += add
        return image

    tifffile.imwrite(tmp_path / "empty.tif", empty)
    tifffile.imwrite(tmp_path / "three.tif", disks(empty, ((80, 90), (200, 260), (300, 120)), 400))
    tifffile.imwrite(tmp_path / "one.tif", disks(empty, ((200, 160),), 400))
    light = rng.normal(205, 3, (384, 384))   # four dark nuclei, 1.2 % of it: 6x the noise below the background
    bright_field = disks(light, ((90, 100), (260, 250), (100, 280), (300, 90)), -18, radius=12)
    Image.fromarray(np.round(np.repeat(bright_field[..., None], 3, -1)).astype(np.uint8)).save(tmp_path / "brightfield.png")
    names = ("empty.tif", "three.tif", "one.tif", "brightfield.png")
    log = io.StringIO()
    segment_paths(bundled_model, [tmp_path / name for name in names], tmp_path / "out",
                  ImageRequest(bundled_model.postprocess_settings, block_size=block_size), log=log)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False).set_index("image")
    assert list(summary["nuclei"]) == [0, 3, 1, 4]
    assert summary.loc["empty", "notes"].startswith("hardly any contrast above the image's noise (an empty field?)")
    assert list(summary["kind"]) == ["fluorescence"] * 3 + ["brightfield"]
    assert (summary.loc[["three", "one"], "notes"] == "").all()
    assert "empty.tif: 0 nuclei" in log.getvalue() and "note: hardly any contrast" in log.getvalue()


def test_a_diameter_the_network_s_size_cap_overrides_is_noted_not_doubted(bundled_model, tmp_path, monkeypatch):
    """A user test: a 6000x6000 field at --diameter 8 was shrunk to fit the network, found a
    fifth of its nuclei and blamed the diameter. (The cap lowered here, for a 256x256 sample.)"""
    import nuclei_app.pipeline as pipeline

    monkeypatch.setattr(pipeline, "MAX_NETWORK_PIXELS", 200_000)
    log = io.StringIO()
    segment_paths(bundled_model, [SAMPLES / "images" / "fluorescence_sparse.png"], tmp_path,
                  ImageRequest(bundled_model.postprocess_settings, diameter=8.0), log=log)
    notes = pd.read_csv(tmp_path / "summary.csv", keep_default_na=False)["notes"][0]
    assert notes.startswith("segmented as if its nuclei were 9 px across, not the 8.0 px given")
    assert "--block-size 2048" in notes and "looks wrong" not in notes


def test_a_diameter_far_from_the_image_s_own_is_doubted_even_where_the_cap_applies(bundled_model, tmp_path,
                                                                                     monkeypatch):
    """A user test: 6 px given for ~25 px nuclei on a 2000x2000 image: 856 nuclei of 2885, and
    only the cap's note, whose advice (block by block at the full scale) would segment at the
    wrong size. The image's own estimate tells (the cap lowered here, for a sample)."""
    import nuclei_app.pipeline as pipeline

    monkeypatch.setattr(pipeline, "MAX_NETWORK_PIXELS", 200_000)
    segment_paths(bundled_model, [SAMPLES / "images" / "fluorescence_dense.png"], tmp_path,
                  ImageRequest(bundled_model.postprocess_settings, diameter=6.0))
    notes = pd.read_csv(tmp_path / "summary.csv", keep_default_na=False)["notes"][0]
    assert notes.startswith("the diameter given, 6 px, looks wrong for this image:"), notes
    assert "a quick estimate from the image says about" in notes and "--block-size" not in notes


def test_channel_n_on_a_folder_with_single_channel_images_segments_those_too(tiny_model, tmp_path):
    """DAPI-only fields beside composites, one --channel for the folder: the single-channel
    images give their one channel, with a note; a channel a multi-channel image lacks is
    still that image's error."""
    import tifffile

    from nuclei_app.batch import ImageRequest

    (tmp_path / "in").mkdir()
    grey = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "in" / "dapi.png")
    tifffile.imwrite(tmp_path / "in" / "composite.tif", np.stack([grey, grey // 2, grey // 3]),
                     photometric="minisblack", metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "in" / "pair.tif", np.stack([grey, grey // 2]), photometric="minisblack",
                     metadata={"axes": "CYX"})
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out",
                           ImageRequest(tiny_model.postprocess_settings, channel=2), log=log)
    lines = {line.split(":")[0].split()[-1]: line for line in log.getvalue().splitlines() if ":" in line}
    assert ("note: one channel only (grey, or colours that are copies of one grey): --channel 2 does not apply, its "
            "one channel is segmented") in lines["dapi.png"]
    # (the noise of these images is noted as such: nuclei under 4 px; no channel note)
    assert "channel 2" in lines["composite.tif"] and "does not apply" not in lines["composite.tif"]
    assert [Path(path).name for path, _ in result.failed] == ["pair.tif"]  # 2 channels: its own error
    assert "channel 2 asked for, but the image has 2 channels" in result.failed[0][1]


@pytest.mark.parametrize("block_size", [None, 64])
def test_a_full_disk_is_reported_as_such_and_ends_the_run(tiny_model, tmp_path, monkeypatch, block_size):
    """The output disk fills up: each image would fail the same way, so the run stops after the
    first with what to do (block-wise images too); no half-written file is left; the rest are
    not on record, for --skip-existing to finish."""
    import errno

    from nuclei_app.batch import ImageRequest

    for index in range(6):
        write_image(tmp_path / "in" / f"img{index}.png", seed=index)
    real_write = Path.write_bytes

    def disk_fills_up(self, data):
        if self.name.endswith(".partial") and "_labels.png" in self.name:
            real_write(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data)
    monkeypatch.setattr(Path, "write_bytes", disk_fills_up)
    log = io.StringIO()
    request = ImageRequest(tiny_model.postprocess_settings, block_size=block_size)
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", request, log=log)
    text = log.getvalue()
    assert result.exit_status == 1 and "This is a bug" not in text
    assert "the output disk is full: free some space or choose another --out" in text
    assert "--skip-existing to finish" in text and 1 <= len(result.failed) <= 2  # the one in flight may fail too
    assert not list((tmp_path / "out").glob(".*partial"))
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert len(summary) == len(result.failed) and (summary["status"] != "ok").all()


def test_a_record_that_can_t_be_written_stops_the_run_without_a_traceback(tiny_model, tmp_path, monkeypatch):
    import errno

    from nuclei_app.records import RunRecord

    for index in range(4):
        write_image(tmp_path / "in" / f"img{index}.png", seed=index)
    real_add, calls = RunRecord.add, []

    def full_after_the_first(self, summary, measurements=None):
        calls.append(summary["image"])
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.summary_path))
        return real_add(self, summary, measurements)
    monkeypatch.setattr(RunRecord, "add", full_after_the_first)
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", tiny_model.postprocess_settings, log=log)
    assert result.exit_status == 1 and len(calls) <= 3  # the image in flight may still finish
    assert "stopped: the run's record (summary.csv, measurements.csv) can't be written: the output disk is full" \
        in log.getvalue()
    assert list(pd.read_csv(tmp_path / "out" / "summary.csv")["image"]) == ["img0"]


def test_writes_contract_files_and_skips_bad_ones(tiny_model, tmp_path):
    good = write_image(tmp_path / "in" / "cells.png")
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", tiny_model.postprocess_settings, log=log)
    assert result.exit_status == 1 and result.processed == [str(good)]
    assert "broken.png" in log.getvalue() and "Traceback" not in log.getvalue()
    labels = Image.open(tmp_path / "out" / "cells_labels.png")
    assert labels.mode.startswith("I;16") and labels.size == (96, 96)
    mask = np.asarray(Image.open(tmp_path / "out" / "cells_mask.png"))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask > 0, read_labels(tmp_path / "out" / "cells_labels.png") > 0)
    assert Image.open(tmp_path / "out" / "cells_overlay.png").mode == "RGB"
    table = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert list(table.columns[:3]) == ["image", "nucleus", "area_px"]
    assert (table["image"] == "cells").all()
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary.set_index("image").loc["cells", "status"] == "ok"
    assert summary.set_index("image").loc["cells", "nuclei"] == len(table)
    assert "damaged" in summary.set_index("image").loc["broken", "status"]


def test_an_image_that_fails_on_a_rerun_leaves_no_earlier_files_behind(tiny_model, tmp_path):
    source = write_image(tmp_path / "in" / "cells.png")
    other = write_image(tmp_path / "in" / "other.png", seed=1)
    settings = tiny_model.postprocess_settings
    from nuclei_app.batch import ImageRequest

    segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", ImageRequest(settings, formats=("png", "tiff")),
                  log=io.StringIO())
    assert (tmp_path / "out" / "cells_labels.tif").is_file()
    source.write_bytes(b"\x89PNG\r\n\x1a\n garbage")          # the same input, now damaged
    (tmp_path / "out" / "cells.geojson").write_text("{}")       # a format this run doesn't write: the user's
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out",
                           ImageRequest(settings, formats=("png", "tiff")), log=io.StringIO())
    assert result.exit_status == 1 and result.processed == [str(other)]
    assert sorted(p.name for p in (tmp_path / "out").glob("cells*")) == ["cells.geojson"]   # png and tiff gone
    assert (tmp_path / "out" / "other_labels.png").is_file()
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("image")
    assert "damaged" in summary.loc["cells", "status"] and summary.loc["other", "status"] == "ok"


def test_a_failed_image_s_line_comes_after_the_images_before_it(tiny_model, tmp_path):
    """A user test: "[7/12] error" printed before "[6/12]", which was still being written."""
    write_image(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    write_image(tmp_path / "in" / "c.png", seed=1)
    log = io.StringIO()
    segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", tiny_model.postprocess_settings, log=log)
    numbered = [line.split("]")[0] for line in log.getvalue().splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    assert numbered == ["[1/3", "[2/3", "[3/3"], log.getvalue()


def test_rows_that_can_t_be_put_in_order_stay_as_they_are_and_the_run_ends_normally(tiny_model, tmp_path,
                                                                                      monkeypatch):
    """A review: on Windows a CSV held open by Excel can't be replaced; the run, every image
    recorded, must still end with its closing line and status."""
    import errno

    from nuclei_app.records import RunRecord

    def held_open(self, names):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.summary_path))
    monkeypatch.setattr(RunRecord, "put_in_order", held_open)
    write_image(tmp_path / "in" / "a.png")
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", tiny_model.postprocess_settings, log=log)
    assert result.exit_status == 0 and "warning: summary.csv and measurements.csv stay in the order" in log.getvalue()
    assert list(pd.read_csv(tmp_path / "out" / "summary.csv")["image"]) == ["a"]


def test_every_image_of_a_mixed_run_has_its_own_number(tiny_model, tmp_path, monkeypatch):
    """A review: block-wise images and the others were each numbered from 1, so two lines said
    [1/4]; a failed image's line had no number (a user test: [7/12] jumped to [11/12])."""
    from nuclei_app import batch

    for seed, name in enumerate(("a.png", "b.tif", "c.png")):
        write_image(tmp_path / "in" / name, seed=seed)
    (tmp_path / "in" / "d.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    monkeypatch.setattr(batch, "is_huge", lambda path: path.suffix == ".tif")   # read by blocks
    log = io.StringIO()
    segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", tiny_model.postprocess_settings, log=log)
    numbers = sorted(line.split("]")[0] for line in log.getvalue().splitlines() if re.match(r"\[\d+/\d+\] ", line))
    assert numbers == ["[1/4", "[2/4", "[3/4", "[4/4"], log.getvalue()
    assert re.search(r"^\[1/4\] \[block-wise\] b\.tif: ", log.getvalue(), re.M), log.getvalue()
    # b went first, but the record lists the inputs in their order
    assert list(pd.read_csv(tmp_path / "out" / "summary.csv")["image"]) == ["a", "b", "c", "d"]
    assert list(pd.read_csv(tmp_path / "out" / "measurements.csv")["image"].unique()) == ["a", "b", "c"]


def test_an_unexpected_failure_skips_only_that_image(tiny_model, tmp_path, monkeypatch):
    import nuclei_app.batch as batch

    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "b.png", seed=1)
    real = batch.predict_labels

    def failing_on_a(*args, **kwargs):
        if not failing_on_a.failed:
            failing_on_a.failed = True
            raise RuntimeError("boom")
        return real(*args, **kwargs)
    failing_on_a.failed = False
    monkeypatch.setattr(batch, "predict_labels", failing_on_a)
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", tiny_model.postprocess_settings, log=log)
    assert result.exit_status == 1 and len(result.processed) == 1
    assert "unexpected RuntimeError: boom" in log.getvalue() and "Traceback" not in log.getvalue()
    # Counted like the others (a user test: the count jumped from [7/12] to [11/12] over two failures).
    assert sorted(line.split("]")[0] for line in log.getvalue().splitlines() if line.startswith("[")) == ["[1/2",
                                                                                                         "[2/2"]


def test_bundled_model_counts_a_sample_plausibly(bundled_model, tmp_path):
    sample = SAMPLES / "images" / "fluorescence_sparse.png"
    truth = read_labels(SAMPLES / "ground_truth" / "fluorescence_sparse.png").max()
    result = segment_paths(bundled_model, [sample], tmp_path, bundled_model.postprocess_settings, log=io.StringIO())
    assert result.exit_status == 0
    count = read_labels(tmp_path / "fluorescence_sparse_labels.png").max()
    assert 0.7 * truth <= count <= 1.3 * truth, (count, truth)


# --- one bad file never ends a run -----------------------------------------------------

def printable(path) -> str:
    """A path as the run reports it: undecodable bytes of a file name as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_outcomes(cases, corpus: Path, out: Path, log: str) -> None:
    """Every case ended as its Case says, in the log, summary.csv and the output files."""
    assert "Traceback" not in log
    summary = pd.read_csv(out / "summary.csv", dtype={"status": str}).set_index("file")
    assert summary.index.is_unique  # nothing found twice through the symlink loops
    listed = [case for case in cases if case.outcome != IGNORED]
    assert len(summary) == len(listed), sorted(set(summary.index) - {printable(corpus / c.name) for c in listed})
    for case in listed:
        file = printable(corpus / case.name)
        status = summary.loc[file, "status"]
        outcome = case.outcome if case.outcome != EITHER else (OK if status == "ok" else ERROR)
        if outcome == OK:
            assert status == "ok", (case, status)
            height, width = case.size
            assert summary.loc[file, ["height", "width"]].tolist() == [height, width], case
            labels = Image.open(out / f"{summary.loc[file, 'image']}_labels.png")
            assert labels.size == (width, height), case
        else:
            lines = [line for line in log.splitlines() if "error: " in line and f"{file}:" in line]
            assert len(lines) == 1, (case, lines)
            assert lines[0].count(Path(file).name) == 1, lines[0]  # the file is named once
            assert case.reason in lines[0] and case.reason in status, (case, lines[0])


def test_one_run_over_every_awkward_file(tiny_model, tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    cases = write_corpus(corpus)
    log = io.StringIO()
    result = segment_paths(tiny_model, [corpus], out, tiny_model.postprocess_settings, log=log)
    check_outcomes(cases, corpus, out, log.getvalue())
    assert result.exit_status == 1
    assert len(result.processed) >= sum(case.outcome == OK for case in cases)


def test_the_cli_survives_the_corpus(tiny_model_dir, tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    cases = write_corpus(corpus)
    run = subprocess.run([sys.executable, "-m", "nuclei_app", "segment", str(corpus), "--out", str(out),
                          "--model", str(tiny_model_dir), "--no-fallback"],
                         cwd=PROJECT, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert run.returncode == 1, run.stderr
    check_outcomes(cases, corpus, out, run.stderr)
    assert "done:" in run.stderr


def test_the_record_is_written_as_images_finish_and_skip_existing_resumes(tiny_model, tmp_path, monkeypatch):
    import nuclei_app.batch as batch

    for index in range(4):
        write_image(tmp_path / "in" / f"img{index}.png", seed=index)
    out = tmp_path / "out"
    real = batch.predict_labels
    seen = []

    def interrupted_at_the_third(*args, **kwargs):
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt  # the user's Ctrl-C: not an image failure, it ends the run
        return real(*args, **kwargs)
    monkeypatch.setattr(batch, "predict_labels", interrupted_at_the_third)
    try:
        segment_paths(tiny_model, [tmp_path / "in"], out, tiny_model.postprocess_settings, log=io.StringIO())
    except KeyboardInterrupt:
        pass
    finished = pd.read_csv(out / "summary.csv")
    assert list(finished["image"]) == ["img0", "img1"]  # what finished before the interruption is on record
    first_labels = (out / "img0_labels.png").read_bytes()

    calls = []
    monkeypatch.setattr(batch, "predict_labels", lambda *a, **k: calls.append(1) or real(*a, **k))
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "in"], out, tiny_model.postprocess_settings, log=log,
                           skip_existing=True)
    assert len(calls) == 2 and result.exit_status == 0 and "2 of 4 images finished before" in log.getvalue()
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["image"]) == ["img0", "img1", "img2", "img3"] and (summary["status"] == "ok").all()
    table = pd.read_csv(out / "measurements.csv")
    assert sorted(table["image"].unique()) == ["img0", "img1", "img2", "img3"]
    assert (table.groupby("image").size() == summary.set_index("image")["nuclei"]).all()  # no row twice
    assert (out / "img0_labels.png").read_bytes() == first_labels
    assert not list(out.glob(".*partial"))


def test_progress_bar_on_a_terminal_and_plain_lines_otherwise(tiny_model, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for index in range(2):
        write_image(tmp_path / "in" / f"img{index}.png", seed=index)
    terminal, plain = Terminal(), io.StringIO()
    segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "a", tiny_model.postprocess_settings, log=terminal)
    segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "b", tiny_model.postprocess_settings, log=plain)
    assert "image/s" in terminal.getvalue() and "2/2" in terminal.getvalue()  # tqdm: count, rate, ETA
    assert "image/s" not in plain.getvalue() and plain.getvalue().count("[") == 2  # one line per image


def test_block_size_gives_the_same_files_as_a_whole_image_run(bundled_model, tmp_path):
    """--block-size on an ordinary image: every format written, nuclei as in a whole-image run."""
    import json

    from nuclei_app.batch import ImageRequest

    image = SAMPLES / "images" / "fluorescence_dense.png"  # 696x520: three blocks of 256 and their margins
    whole = ImageRequest(bundled_model.postprocess_settings, formats=("png", "geojson"), diameter=28.0)
    blocks = ImageRequest(bundled_model.postprocess_settings, formats=("png", "geojson"), diameter=28.0,
                          block_size=256)
    log = io.StringIO()
    segment_paths(bundled_model, [image], tmp_path / "whole", whole, log=io.StringIO())
    result = segment_paths(bundled_model, [image], tmp_path / "blocks", blocks, log=log)
    assert result.exit_status == 0 and "[block-wise] fluorescence_dense.png: segmenting block by block" in log.getvalue()
    counts = [read_labels(tmp_path / folder / "fluorescence_dense_labels.png").max() for folder in ("whole", "blocks")]
    assert abs(int(counts[0]) - int(counts[1])) <= max(2, 0.02 * counts[0]), counts
    features = json.loads((tmp_path / "blocks" / "fluorescence_dense.geojson").read_text())["features"]
    assert len(features) == counts[1]
    summary = pd.read_csv(tmp_path / "blocks" / "summary.csv")
    assert summary.loc[0, "status"] == "ok" and summary.loc[0, "nuclei"] == counts[1]


def write_calibrated(path, pixel_um, seed=0):
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, fluorescence_like(synthetic_labels(seed=seed), seed), ome=True,
                     metadata={"PhysicalSizeX": pixel_um, "PhysicalSizeY": pixel_um})
    return path


def run_by_route(route: str, model, inputs, out, request: ImageRequest, monkeypatch, huge=lambda path: True):
    """(result, log text) of the batch over ``inputs`` by one route an image can take: "whole"
    in-process, "blocks" (the request's --block-size), "huge" (the files ``huge`` picks, read
    lazily) or "cluster" (a Dask worker)."""
    from nuclei_app import batch
    from nuclei_app.distributed import run_on_cluster

    if route == "huge":
        monkeypatch.setattr(batch, "is_huge", huge)
    log = io.StringIO()
    if route == "cluster":
        result = run_on_cluster([inputs], str(out), request, str(model.folder), workers=1, log=log)
    else:
        result = segment_paths(model, [inputs], out, request, log=log)
    return result, log.getvalue()


@pytest.mark.parametrize("route", ["whole", "blocks", "huge", "cluster"])
def test_a_noise_only_field_gives_no_nuclei_and_is_noted(bundled_model, tmp_path, monkeypatch, route):
    """A user test: empty wells and noise came back as hundreds of 2-3 px "nuclei" with no word
    (later with a note that they were under what the model resolves). Now the noise is not
    stretched into nuclei: none, and every route an image can take says why in its log line and
    the summary's notes."""
    (tmp_path / "in").mkdir()
    noise = (np.random.default_rng(0).random((96, 96)) * 40).astype(np.uint8)
    tifffile.imwrite(tmp_path / "in" / "empty_well.tif", noise)
    # Noise in each colour reads as light (their maximum): it was cautioned as tissue too.
    colour_noise = (np.random.default_rng(1).random((96, 96, 3)) * 40).astype(np.uint8)
    tifffile.imwrite(tmp_path / "in" / "empty_rgb.tif", colour_noise, photometric="rgb")
    request = ImageRequest(bundled_model.postprocess_settings, formats=("tiff",),
                           block_size=256 if route == "blocks" else None)
    result, log = run_by_route(route, bundled_model, tmp_path / "in", tmp_path / "out", request, monkeypatch)
    assert result.exit_status == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("image")
    for name in ("empty_well", "empty_rgb"):
        (line,) = [line for line in log.splitlines() if f"{name}.tif:" in line and " nuclei" in line]
        assert f"{name}.tif: 0 nuclei" in line and "note: hardly any contrast above the image's noise" in line, line
        assert "looks like" not in line, line  # no caution for a kind the noise made up
        assert summary.loc[name, "nuclei"] == 0
        assert summary.loc[name, "notes"].startswith("hardly any contrast above the image's noise (an empty field?)")
        # Segmented at the model's own diameter, and said so: not a size "estimated" from nothing.
        assert summary.loc[name, "diameter_source"] == "model" and f"px ({'model'})" in line


@pytest.mark.parametrize("route", ["whole", "blocks", "huge", "cluster"])
def test_measurements_are_in_um_where_the_file_records_its_pixel_size(bundled_model, tmp_path, monkeypatch, route):
    """An OME-TIFF's PhysicalSizeX gives µm columns, the summary's pixel size and a label TIFF
    Fiji reads calibrated; a PNG (no calibration) has the same columns, empty. Every route an
    image can take: whole in-process, --block-size, a huge TIFF read lazily, a Dask worker."""
    from nuclei_app.calibration import UM_COLUMNS, read_pixel_size

    write_calibrated(tmp_path / "in" / "cal.ome.tif", 0.325)
    write_image(tmp_path / "in" / "plain.png", seed=1)
    out = tmp_path / "out"
    request = ImageRequest(bundled_model.postprocess_settings, formats=("tiff",),
                           block_size=256 if route == "blocks" else None)
    result, log = run_by_route(route, bundled_model, tmp_path / "in", out, request, monkeypatch,
                               huge=lambda path: path.suffix == ".tif")
    assert result.exit_status == 0
    (line,) = [line for line in log.splitlines() if "cal.ome.tif:" in line and " nuclei" in line]
    assert re.search(r"diameter \d+\.\d px = \d+\.\d µm \(", line), line   # the diameter in µm too
    summary = pd.read_csv(out / "summary.csv").set_index("image")
    assert summary.loc["cal", "pixel_size_um"] == 0.325
    assert summary.loc["cal", "pixel_size_source"] == "OME-TIFF metadata"
    assert pd.isna(summary.loc["plain", "pixel_size_um"]) and pd.isna(summary.loc["plain", "pixel_size_source"])
    table = pd.read_csv(out / "measurements.csv")
    assert list(table.columns[-len(UM_COLUMNS):]) == UM_COLUMNS
    calibrated, plain = table[table["image"] == "cal"], table[table["image"] == "plain"]
    assert len(calibrated) > 0 and len(plain) > 0
    assert np.allclose(calibrated["area_um2"], calibrated["area_px"] * 0.325 ** 2)
    assert np.allclose(calibrated["diameter_um"], calibrated["diameter_px"] * 0.325)
    assert plain[UM_COLUMNS].isna().all().all()
    assert read_pixel_size(out / "cal_labels.tif").size.um == pytest.approx(0.325)
    assert read_pixel_size(out / "plain_labels.tif").size is None


@pytest.mark.parametrize("route", ["whole", "blocks", "huge", "cluster"])
def test_a_diameter_in_um_is_each_image_s_own_pixels(tiny_model, tmp_path, monkeypatch, route):
    """--diameter 10um: 20 px on a 0.5 µm file; a file with no pixel size fails alone, saying
    what to give. Every route an image can take."""
    write_calibrated(tmp_path / "in" / "cal.ome.tif", 0.5)
    write_image(tmp_path / "in" / "plain.png", seed=1)
    write_image(tmp_path / "in" / "plain_tiff.tif", seed=2)   # huge on the huge route, as cal.ome.tif
    request = ImageRequest(tiny_model.postprocess_settings, diameter_um=10.0,
                           block_size=256 if route == "blocks" else None)
    result, log = run_by_route(route, tiny_model, tmp_path / "in", tmp_path / "out", request, monkeypatch,
                               huge=lambda path: path.suffix == ".tif")
    (line,) = [line for line in log.splitlines() if "cal.ome.tif:" in line and " nuclei" in line]
    assert "diameter 20.0 px = 10.0 µm (given)" in line, line
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("image")
    assert summary.loc["cal", "status"] == "ok" and summary.loc["cal", "diameter_px"] == 20.0
    for uncalibrated in ("plain", "plain_tiff"):
        assert "a diameter in µm (10 µm) needs the image's pixel size, and it has no usable one: give the " \
            "diameter in pixels, or --pixel-size UM" in summary.loc[uncalibrated, "status"]
    assert "diameter 10 µm" in summary.loc["cal", "settings"] and len(result.failed) == 2


def test_a_pixel_size_given_applies_to_every_image_and_a_different_file_value_is_noted(bundled_model, tmp_path):
    write_calibrated(tmp_path / "in" / "cal.ome.tif", 0.325)
    write_image(tmp_path / "in" / "plain.png", seed=1)
    request = ImageRequest(bundled_model.postprocess_settings, pixel_size=0.65)
    log = io.StringIO()
    segment_paths(bundled_model, [tmp_path / "in"], tmp_path / "out", request, log=log)
    lines = {line.split(":")[0].split()[-1]: line for line in log.getvalue().splitlines() if line.startswith("[")}
    assert "note: the pixel size given, 0.65 µm, is used; the file says 0.325 µm per pixel (OME-TIFF metadata)" in \
        lines["cal.ome.tif"]
    assert "note" not in lines["plain.png"]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("image")
    assert summary["pixel_size_um"].tolist() == [0.65, 0.65] and set(summary["pixel_size_source"]) == {"given"}
    assert summary["settings"].str.endswith("; pixel size 0.65 µm").all()
    table = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert np.allclose(table["area_um2"], table["area_px"] * 0.65 ** 2)


@pytest.mark.parametrize("route", ["whole", "huge"])
def test_z_plane_focus_segments_a_stack_s_sharp_plane_as_that_plane_alone(bundled_model, tmp_path, monkeypatch,
                                                                          route):
    """A Z-stack whose middle plane is in focus (those above and below blurred), segmented with
    --z-plane focus, gives that plane's own labels, read whole or by windows (huge)."""
    import tifffile
    from scipy import ndimage

    from nuclei_app import batch
    from nuclei_app.imageio import decode_array

    sharp = decode_array(SAMPLES / "images" / "fluorescence_sparse.png")
    sharp = sharp[..., 0] if sharp.ndim == 3 else sharp
    planes = np.stack([ndimage.gaussian_filter(sharp, 4), sharp, ndimage.gaussian_filter(sharp, 6)])
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "stack.tif", planes, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "in" / "sharp.tif", sharp)
    if route == "huge":
        monkeypatch.setattr(batch, "is_huge", lambda path: True)
    request = ImageRequest(bundled_model.postprocess_settings, formats=("tiff",), z_plane="focus")
    log = io.StringIO()
    assert segment_paths(bundled_model, [tmp_path / "in"], tmp_path / "out", request, log=log).exit_status == 0
    stack, alone = (tifffile.imread(tmp_path / "out" / f"{name}_labels.tif") for name in ("stack", "sharp"))
    assert stack.max() > 10 and np.array_equal(stack, alone)
    (line,) = [line for line in log.getvalue().splitlines() if "stack.tif:" in line and " nuclei" in line]
    assert "note: a stack of 3 Z planes: plane 1, the sharpest" in line
    summary = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False).set_index("image")
    assert summary.loc["stack", "settings"].endswith("; z plane focus")


def test_formats_intensities_gives_every_channel_s_intensity_per_nucleus(bundled_model, tmp_path):
    """A composite: nuclei in channel 2, a cytoplasm-like stain in 0 and 1. The nuclear
    channel's mean is the measurements' mean_intensity; the others are measured too."""
    from nuclei_app.imageio import read_image

    nuclei = read_image(SAMPLES / "images" / "fluorescence_sparse.png")[..., 0]
    cytoplasm = ndimage_blur(nuclei)
    composite = (np.stack([cytoplasm, cytoplasm * 0.5, nuclei], axis=-1) * 255).astype(np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(composite).save(tmp_path / "in" / "composite.png")
    request = ImageRequest(bundled_model.postprocess_settings, channel=2, formats=("intensities",))
    assert segment_paths(bundled_model, [tmp_path / "in"], tmp_path / "out", request, log=io.StringIO()).exit_status == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("composite*")) == ["composite_intensities.csv"]
    channels = pd.read_csv(tmp_path / "out" / "composite_intensities.csv")
    measured = pd.read_csv(tmp_path / "out" / "measurements.csv")
    assert len(channels) == len(measured) > 10
    np.testing.assert_array_equal(channels["nucleus"], measured["nucleus"])
    assert (channels["image"] == measured["image"]).all()   # the two join on (image, nucleus)
    np.testing.assert_allclose(channels["mean_c2"], measured["mean_intensity"], rtol=1e-6)
    np.testing.assert_allclose(channels["integrated_c1"], channels["integrated_c0"] * 0.5, rtol=0.02)


def ndimage_blur(plane):
    from scipy import ndimage

    return ndimage.gaussian_filter(plane, 8) * 0.8 + 0.1


@pytest.mark.parametrize("route", ["whole", "blocks", "huge", "cluster"])
def test_all_colours_of_a_fluorescence_composite_are_segmented_with_a_note(bundled_model, tmp_path, monkeypatch,
                                                                          route):
    """A user test: --channel all on an RGB composite (nuclei in blue, a cytoplasm stain in
    green) gave 1 nucleus, exit 0, no word; the automatic choice found 107. Every route."""
    from .test_channels import nuclei_and_cytoplasm

    (tmp_path / "in").mkdir()
    nuclei, cytoplasm, _ = nuclei_and_cytoplasm()
    composite = np.stack([np.zeros_like(nuclei), cytoplasm, nuclei], axis=-1)
    tifffile.imwrite(tmp_path / "in" / "composite.tif", to_uint8(composite), photometric="rgb")
    request = ImageRequest(bundled_model.postprocess_settings, formats=("tiff",), diameter=16.0, channel="all",
                           block_size=96 if route == "blocks" else None)
    result, log = run_by_route(route, bundled_model, tmp_path / "in", tmp_path / "out", request, monkeypatch)
    assert result.exit_status == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False).set_index("image")
    assert "channel 2, the automatic choice, looks like the nuclear one" in summary.loc["composite", "notes"]
    assert "fluorescence composite" in log


@pytest.mark.parametrize("route", ["whole", "blocks", "huge", "cluster"])
def test_a_cytoplasm_channel_picked_by_hand_is_segmented_with_a_note(bundled_model, tmp_path, monkeypatch, route):
    """--channel 1, a composite's cytoplasm stain: segmented as asked, and every route says
    which channel the automatic choice would take."""
    from .test_channels import nuclei_and_cytoplasm

    (tmp_path / "in").mkdir()
    nuclei, cytoplasm, _ = nuclei_and_cytoplasm()
    tifffile.imwrite(tmp_path / "in" / "stack.tif", to_uint8(np.stack([nuclei, cytoplasm])), imagej=True,
                     metadata={"axes": "CYX"})
    request = ImageRequest(bundled_model.postprocess_settings, formats=("tiff",), diameter=16.0, channel=1,
                           block_size=96 if route == "blocks" else None)
    result, log = run_by_route(route, bundled_model, tmp_path / "in", tmp_path / "out", request, monkeypatch)
    assert result.exit_status == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False).set_index("image")
    assert summary.loc["stack", "channel"] == 1
    assert "segmented on channel 1, as asked; the automatic choice would be channel 0" in summary.loc["stack", "notes"]


@pytest.mark.parametrize("route", ["whole", "blocks", "huge", "cluster"])
def test_each_row_says_what_the_image_looks_like_and_cautions_where_the_model_is_weak(bundled_model, tmp_path,
                                                                                     monkeypatch, route):
    """A user test: the app said "brightfield scores low", the CLI's log and summary.csv said
    nothing, so a batch could not sort out the images to check by eye. Every route; the
    brightfield at 8 bits and as a 12-bit camera saves it, in a 16-bit TIFF (that one was
    taken for fluorescence)."""
    from nuclei_app.kinds import kind_confidence

    (tmp_path / "in").mkdir()
    brightfield = read_image(SAMPLES / "images" / "brightfield.png")
    tifffile.imwrite(tmp_path / "in" / "brightfield.tif", np.round(brightfield * 4095).astype(np.uint16))
    tifffile.imwrite(tmp_path / "in" / "brightfield_8bit.tif", to_uint8(brightfield))
    fluorescence = read_image(SAMPLES / "images" / "fluorescence_sparse.png")
    tifffile.imwrite(tmp_path / "in" / "fluorescence_sparse.tif", to_uint8(fluorescence))
    request = ImageRequest(bundled_model.postprocess_settings, formats=("tiff",), diameter=16.0,
                           block_size=256 if route == "blocks" else None)
    result, log = run_by_route(route, bundled_model, tmp_path / "in", tmp_path / "out", request, monkeypatch)
    assert result.exit_status == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv", keep_default_na=False).set_index("image")
    assert summary.loc["brightfield", "kind"] == summary.loc["brightfield_8bit", "kind"] == "brightfield"
    assert summary.loc["fluorescence_sparse", "kind"] == "fluorescence"
    weak_score, _, weak = kind_confidence(bundled_model.validation_metrics, "brightfield")
    assert weak and not kind_confidence(bundled_model.validation_metrics, "fluorescence")[2]
    caution = f"looks like brightfield, on which the model's validation mean AP is only {weak_score:.2f}"
    assert caution in summary.loc["brightfield", "notes"]
    assert "looks like" not in summary.loc["fluorescence_sparse", "notes"]
    (line,) = [line for line in log.splitlines() if "brightfield.tif:" in line and " nuclei" in line]
    assert caution in line
