"""The CLI as a user runs it: a real subprocess, real files, exit codes, stderr."""
import json
import os
import subprocess
import sys

from PIL import Image

from nuclei_app.label_files import read_labels

from .conftest import PROJECT, SAMPLES, fluorescence_like, synthetic_labels


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "nuclei_app", *map(str, args)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_segment_success_and_outputs(tiny_model_dir, tmp_path):
    Image.fromarray(fluorescence_like(synthetic_labels())).save(tmp_path / "a.png")
    result = run_cli("segment", tmp_path / "a.png", "--out", tmp_path / "out", "--model", tiny_model_dir,
                     "--threshold", "0.4", "--min-size", "3")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "a_labels.png", "a_mask.png", "a_overlay.png", "measurements.csv", "summary.csv"}
    assert "[1/1] a.png" in result.stderr and "diameter" in result.stderr
    # The tiny model validated on a training image: said once, not quoted as confidence per image.
    assert "(scored on an image it trained on (too few images for a validation split): check its results by eye)" \
        in result.stderr


def test_the_closing_line_counts_what_this_run_segmented_apart_from_what_it_kept(tiny_model_dir, tmp_path):
    """A user test: a --skip-existing run with nothing left to do said "done: 13 segmented"."""
    for seed in range(2):
        Image.fromarray(fluorescence_like(synthetic_labels(seed=seed), seed)).save(tmp_path / f"{seed}.png")
    (tmp_path / "0.png").rename(tmp_path / "a.png")
    run_cli("segment", tmp_path / "a.png", "--out", tmp_path / "out", "--model", tiny_model_dir)
    result = run_cli("segment", tmp_path / "a.png", tmp_path / "1.png", "--out", tmp_path / "out", "--model",
                     tiny_model_dir, "--skip-existing")
    assert result.returncode == 0, result.stderr
    assert "done: 1 segmented, 1 kept from before, 0 failed; results in " in result.stderr, result.stderr


def labels_by_precision(model_dir, folder, precisions) -> tuple[dict, str]:
    """One synthetic image segmented in each precision at a given diameter: its labels by
    precision, and the last run's stderr."""
    Image.fromarray(fluorescence_like(synthetic_labels())).save(folder / "a.png")
    labels = {}
    for precision in precisions:
        result = run_cli("segment", folder / "a.png", "--out", folder / precision, "--model", model_dir,
                         "--precision", precision, "--diameter", "14")
        assert result.returncode == 0, result.stderr
        labels[precision] = read_labels(folder / precision / "a_labels.png")
    return labels, result.stderr


def test_bfloat16_precision_segments_like_float32(tiny_model_dir, tmp_path):
    labels, _ = labels_by_precision(tiny_model_dir, tmp_path, ("float32", "bfloat16"))
    counts = {precision: int(found.max()) for precision, found in labels.items()}
    assert abs(counts["bfloat16"] - counts["float32"]) <= 1, counts


def test_xnnpack_engine_segments_like_tensorflow(tiny_model_dir, tmp_path):
    Image.fromarray(fluorescence_like(synthetic_labels())).save(tmp_path / "a.png")
    labels, logs = {}, {}
    for engine in ("xnnpack", "tensorflow"):
        result = run_cli("segment", tmp_path / "a.png", "--out", tmp_path / engine, "--model", tiny_model_dir,
                         "--engine", engine, "--diameter", "14")
        assert result.returncode == 0, result.stderr
        labels[engine], logs[engine] = read_labels(tmp_path / engine / "a_labels.png"), result.stderr
    assert "float32 on XNNPACK" in logs["xnnpack"] and "float32 on TensorFlow's kernels" in logs["tensorflow"]
    assert "XNNPACK delegate" not in logs["xnnpack"]  # TensorFlow Lite's own announcement stays off the user's stderr
    assert labels["xnnpack"].max() > 0
    assert (labels["xnnpack"] != labels["tensorflow"]).mean() < 0.001


def test_the_default_engine_is_the_faster_one_for_this_processor(tiny_model_dir, tmp_path):
    from nuclei_app import xnnpack

    Image.fromarray(fluorescence_like(synthetic_labels())).save(tmp_path / "a.png")
    result = run_cli("segment", tmp_path / "a.png", "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert result.returncode == 0, result.stderr
    expected = "float32 on XNNPACK" if xnnpack.preferred_here() else "float32 on TensorFlow's kernels"
    assert expected in result.stderr


def test_xnnpack_with_bfloat16_is_refused(tiny_model_dir, tmp_path):
    result = run_cli("segment", SAMPLES / "images" / "tissue_he.png", "--out", tmp_path, "--model", tiny_model_dir,
                     "--engine", "xnnpack", "--precision", "bfloat16")
    assert result.returncode == 2 and "float32 or int8" in result.stderr and "Traceback" not in result.stderr


def test_int8_on_tensorflows_kernels_is_refused(tiny_model_dir, tmp_path):
    result = run_cli("segment", SAMPLES / "images" / "tissue_he.png", "--out", tmp_path, "--model", tiny_model_dir,
                     "--engine", "tensorflow", "--precision", "int8")
    assert result.returncode == 2 and "int8 runs on XNNPACK's kernels only" in result.stderr
    assert "Traceback" not in result.stderr


def test_int8_precision_segments_like_float32_and_says_so(tiny_model_dir, tmp_path):
    labels, stderr = labels_by_precision(tiny_model_dir, tmp_path, ("float32", "int8"))
    assert "network: int8 on XNNPACK" in stderr and "Traceback" not in stderr
    # The tiny model's probabilities sit near its thresholds, so counts may move; its masks hold
    # (test_quantize scores the bundled model's int8 network against the ground truth).
    assert labels["int8"].max() > 0 and ((labels["int8"] > 0) != (labels["float32"] > 0)).mean() < 0.02


def test_bad_file_is_reported_others_processed(tiny_model_dir, tmp_path):
    Image.fromarray(fluorescence_like(synthetic_labels())).save(tmp_path / "good.png")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00 truncated")
    result = run_cli("segment", tmp_path, "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert result.returncode == 1
    assert "bad.tif" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "out" / "good_labels.png").exists()


def test_default_model_is_the_bundled_one(tmp_path):
    result = run_cli("segment", SAMPLES / "images" / "tissue_he.png", "--out", tmp_path, env={"NUCLEI_MODEL": ""})
    assert result.returncode == 0, result.stderr
    assert "assets/model" in result.stderr and (tmp_path / "tissue_he_labels.png").exists()


def test_the_cli_runs_from_the_user_s_data_folder_on_the_bundled_model(tmp_path):
    """A user test: `cd data && .venv/bin/python -m nuclei_app segment ...` said "No module
    named nuclei_app" (scripts/setup.sh now puts the project on the venv's import path)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "field.png").write_bytes((SAMPLES / "images" / "tissue_he.png").read_bytes())
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "NUCLEI_MODEL")}
    result = subprocess.run([sys.executable, "-m", "nuclei_app", "segment", "field.png", "--out", "run1/"],
                            cwd=tmp_path / "data", capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr
    assert f"model: {PROJECT / 'assets' / 'model'} (bundled)\n" in result.stderr   # no caveat: it was validated
    assert (tmp_path / "data" / "run1" / "field_labels.png").exists()


def test_a_mistyped_local_model_folder_exits_2(tmp_path):
    missing = tmp_path / "no_model"
    for extra in ((), ("--no-fallback",)):
        result = run_cli("segment", SAMPLES / "images" / "tissue_he.png", "--out", tmp_path / "out",
                         "--model", missing, *extra)
        assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "out" / "tissue_he_labels.png").exists()


def test_usage_errors_exit_2():
    assert run_cli("segment").returncode == 2


def test_hub_source_gives_the_same_labels_as_the_local_folder(hub, repo_id, tiny_model_dir, tmp_path):
    from .conftest import model_files

    sha = hub.commit(repo_id, model_files(tiny_model_dir))
    image = SAMPLES / "images" / "fluorescence_sparse.png"
    local = run_cli("segment", image, "--out", tmp_path / "local", "--model", tiny_model_dir)
    remote = run_cli("segment", image, "--out", tmp_path / "hub", "--model", f"hf://{repo_id}@main", "--no-fallback")
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert sha in remote.stderr  # the resolved commit is reported
    name = "fluorescence_sparse_labels.png"
    assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "hub" / name).read_bytes()


def test_hub_failures_fall_back_or_fail(hub, repo_id, tmp_path):
    image = SAMPLES / "images" / "fluorescence_sparse.png"
    fallback = run_cli("segment", image, "--out", tmp_path, "--model", f"hf://{repo_id}")
    assert fallback.returncode == 0
    assert "warning" in fallback.stderr and "repository not found" in fallback.stderr
    # On record too, where a cluster job's stderr is lost (a user test).
    settings = (tmp_path / "summary.csv").read_text()
    assert f"(bundled: hf://{repo_id} could not be used)" in settings, settings
    strict = run_cli("segment", image, "--out", tmp_path, "--model", f"hf://{repo_id}", "--no-fallback")
    assert strict.returncode == 2 and "repository not found" in strict.stderr and "Traceback" not in strict.stderr


def test_offline_mode_is_honoured(hub, repo_id, tiny_model_dir):
    from .conftest import model_files

    hub.commit(repo_id, model_files(tiny_model_dir))
    result = run_cli("info", "--model", f"hf://{repo_id}@main", "--no-fallback", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "HF_HUB_OFFLINE" in result.stderr
    assert hub.requests == []


def test_diameter_and_channel_flags_are_used_and_reported(tiny_model_dir, tmp_path):
    import numpy as np
    import pandas as pd
    import tifffile

    labels = synthetic_labels()
    stack = np.stack([np.zeros_like(labels), fluorescence_like(labels), np.zeros_like(labels)]).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack", metadata={"axes": "CYX"})
    result = run_cli("segment", tmp_path / "stack.tif", "--out", tmp_path / "out", "--model", tiny_model_dir,
                     "--diameter", "25", "--channel", "1")
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    row = summary.iloc[0]
    assert (row["diameter_px"], row["diameter_source"], str(row["channel"]), row["status"]) == (25, "given", "1", "ok")
    assert (row["width"], row["height"]) == (96, 96) and "warning" not in result.stderr
    tiny = run_cli("segment", tmp_path / "stack.tif", "--out", tmp_path / "o1", "--model", tiny_model_dir,
                   "--diameter", "0.5", "--channel", "1")
    assert tiny.returncode == 0 and "warning: --diameter 0.5: images are resized at most 4x up" in tiny.stderr
    wrong = run_cli("segment", tmp_path / "stack.tif", "--out", tmp_path / "o2", "--model", tiny_model_dir, "--channel", "5")
    assert wrong.returncode == 1 and "channel 5" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "channel 5" in pd.read_csv(tmp_path / "o2" / "summary.csv").iloc[0]["status"]


def test_a_diameter_takes_pixels_or_microns():
    from nuclei_app.__main__ import diameter_argument, pixel_size_argument

    assert [diameter_argument(text) for text in ("17", "17px", "17 PX", "8um", "8 µm", "8μm", "8micron")] == \
        [(17.0, "px")] * 3 + [(8.0, "µm")] * 4
    import pytest

    assert diameter_argument("0.008mm")[0] == pytest.approx(8.0) and diameter_argument("8000nm")[0] == pytest.approx(8.0)
    assert [pixel_size_argument(text) for text in ("0.65", "0.65um", "0.65 µm")] == [0.65] * 3
    assert pixel_size_argument("325nm") == pytest.approx(0.325)


def test_a_diameter_in_microns_past_what_images_are_resized_for_is_noted(tiny_model_dir, tmp_path):
    """--diameter 2um at --pixel-size 1: 2 px, past what images are resized for: the image's
    note says so, as the warning does for --diameter 2 (and its line gives the px and µm)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes((SAMPLES / "images" / "fluorescence_sparse.png").read_bytes())
    result = run_cli("segment", tmp_path / "in", "--out", tmp_path / "out", "--model", tiny_model_dir,
                     "--diameter", "2um", "--pixel-size", "1")
    assert result.returncode == 0, result.stderr
    assert "note: --diameter 2 µm = 2 px: images are resized at most" in result.stderr
    assert "diameter 2.0 px = 2.0 µm (given)" in result.stderr


def test_a_unit_cut_off_by_a_space_is_an_error_not_an_input(tmp_path):
    """A user test: `--diameter 8 um folder/` segmented every image at 8 px, "um" a missing input."""
    result = run_cli("segment", "--diameter", "8", "um", SAMPLES / "images", "--out", tmp_path / "o")
    assert result.returncode == 2 and "'um' is not a file or folder: a unit cut off by a space?" in result.stderr
    assert not (tmp_path / "o" / "summary.csv").exists()


def test_an_output_url_only_one_process_can_see_is_refused(tmp_path):
    """A trial: --out memory://run with --workers 1 said "done: 2 segmented", exit 0, and every
    file was lost (each process has its own memory://); a URL in-process is refused too."""
    image = SAMPLES / "images" / "fluorescence_sparse.png"
    for flags in (["--workers", "1"], ["--scheduler", "tcp://127.0.0.1:1"], []):
        result = run_cli("segment", image, "--out", "memory://run1", *flags)
        assert result.returncode == 2 and "Traceback" not in result.stderr, flags
        assert "memory:// file system lives inside one process" in result.stderr, flags
    result = run_cli("segment", image, "--out", "s3://bucket/run")
    assert result.returncode == 2 and "only --workers or --scheduler runs write to URLs" in result.stderr


def test_an_unreachable_scheduler_is_told_before_the_model_loads(tmp_path):
    """A trial waited 52 s (the model loading, then the connection timeout) for this line."""
    result = run_cli("segment", SAMPLES / "images", "--out", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:1")
    assert result.returncode == 2 and "could not reach the Dask scheduler at tcp://127.0.0.1:1" in result.stderr
    assert "model:" not in result.stderr and "Traceback" not in result.stderr


def test_bad_flag_values_are_usage_errors(tmp_path):
    for flags in (["--diameter", "-3"], ["--diameter", "big"], ["--channel", "blue"], ["--precision", "half"]):
        result = run_cli("segment", tmp_path, "--out", tmp_path / "o", *flags)
        assert result.returncode == 2 and "Traceback" not in result.stderr, flags
    result = run_cli("segment", tmp_path, "--out", tmp_path / "o", "--diameter", "1e9")
    assert "must be a number of pixels above 0 and below 10000, got 1e9" in result.stderr  # the rule it broke
    for flags, rule in ((["--pixel-size", "100"], "the side of one pixel in µm, between 0.005 and 50 (e.g. 0.65"),
                        (["--diameter", "8mm"], "must be a length above 0 and below 1000 µm, got 8mm"),
                        (["--diameter", "8 inches"], "unknown unit 'inches' in '8 inches'"),
                        (["--diameter", "8,5um"], "not a number: '8,5' (use a decimal point)"),
                        (["--diameter", "8nm"], "8nm is 0.008 µm, smaller than any nucleus (they measure about 0.5 "
                                                "to 100 µm): a unit typed wrong (8um?)"),
                        (["--diameter", "0.3um"], "a unit typed wrong (give it in µm (8um) or px)"),
                        (["--pixel-size", "5px"], "a pixel's size is a length"),
                        (["--z-plane", "best"], "must be a plane number from 0, 'focus' (the sharpest plane) or "
                                                "'max'")):
        result = run_cli("segment", tmp_path, "--out", tmp_path / "o", *flags)
        assert result.returncode == 2 and rule in result.stderr and "Traceback" not in result.stderr, flags


def test_formats_all_writes_every_export_that_independent_readers_open(tmp_path):
    import zipfile

    import numpy as np
    import roifile
    import tifffile

    result = run_cli("segment", SAMPLES / "images", "--out", tmp_path, "--formats", "all")
    assert result.returncode == 0, result.stderr
    for image in sorted((SAMPLES / "images").glob("*.png")):
        labels = read_labels(tmp_path / f"{image.stem}_labels.png")
        count = len(np.unique(labels)) - 1
        assert count > 0
        np.testing.assert_array_equal(tifffile.imread(tmp_path / f"{image.stem}_labels.tif"), labels)
        with zipfile.ZipFile(tmp_path / f"{image.stem}_rois.zip") as archive:
            assert len(archive.namelist()) == count
        assert len(roifile.roiread(tmp_path / f"{image.stem}_rois.zip")) == count
        features = json.loads((tmp_path / f"{image.stem}.geojson").read_text())["features"]
        assert len(features) == count


def test_formats_choose_the_files_and_bad_lists_exit_2(tmp_path):
    image = SAMPLES / "images" / "fluorescence_sparse.png"
    result = run_cli("segment", image, "--out", tmp_path, "--formats", "geojson,TIFF")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fluorescence_sparse.geojson", "fluorescence_sparse_labels.tif", "measurements.csv", "summary.csv"]
    bad = run_cli("segment", image, "--out", tmp_path, "--formats", "png,shp")
    assert bad.returncode == 2 and "'shp'" in bad.stderr


def test_a_folder_without_images_says_so_once(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("segment", tmp_path / "empty", "--out", tmp_path / "out")
    assert result.returncode == 1 and "no image files found" in result.stderr and "failed" not in result.stderr


def test_out_of_range_settings_exit_2_with_the_reason(tmp_path):
    image = SAMPLES / "images" / "fluorescence_sparse.png"
    for flag, value, reason in (("--threshold", "-0.1", "between 0 and 1"), ("--threshold", "x", "not a number"),
                                ("--min-size", "-3", "0 or more"), ("--diameter", "0", "above 0 and below 10000")):
        result = run_cli("segment", image, "--out", tmp_path, flag, value)
        assert result.returncode == 2 and reason in result.stderr, (flag, value, result.stderr)


def test_argument_mistakes_exit_2_before_any_work(tmp_path):
    (tmp_path / "a_file").write_text("x")
    image = SAMPLES / "images" / "fluorescence_sparse.png"
    for args, reason in ((("segment", image, "--out", tmp_path / "a_file"), "is a file; give a folder"),
                         (("info", "--model", "hf://bad"), "expected hf://OWNER/NAME"),
                         (("info", "--model", image), "is a file, not a model folder")):
        result = run_cli(*args)
        assert result.returncode == 2 and reason in result.stderr and "Traceback" not in result.stderr, args
    from_env = run_cli("info", env={"NUCLEI_MODEL": str(tmp_path / "nope")})
    assert from_env.returncode == 2 and "NUCLEI_MODEL environment variable" in from_env.stderr


def test_outputs_inside_an_input_folder_are_not_segmented_again(tmp_path):
    import shutil

    shutil.copy(SAMPLES / "images" / "fluorescence_sparse.png", tmp_path / "cells.png")
    for _ in range(2):
        result = run_cli("segment", tmp_path, "--out", tmp_path / "results")
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "results").glob("*_labels.png")) == ["cells_labels.png"]


def test_workers_without_dask_say_what_to_install_before_loading_a_model(tmp_path):
    """A user test: --workers without the CLI's extras loaded the model first, then said what
    to install. Here the model does not even exist: the install message must come first."""
    hidden = tmp_path / "site" / "distributed"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'distributed'\")\n")
    Image.fromarray(fluorescence_like(synthetic_labels())).save(tmp_path / "a.png")
    python_path = os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")]))
    result = run_cli("segment", tmp_path / "a.png", "--out", tmp_path / "out", "--model", tmp_path / "no_model",
                     "--workers", "1", env={"PYTHONPATH": python_path})
    assert result.returncode == 2 and "pip install -r requirements-cli.txt" in result.stderr, result.stderr
    assert "no_model" not in result.stderr and "Traceback" not in result.stderr


def damaged_tag_tiff(path) -> None:
    """A TIFF whose ImageDescription points past the end of the file; its pixels all there."""
    import io
    import struct

    import numpy as np
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, fluorescence_like(synthetic_labels()), description="x" * 500, metadata=None)
    data = bytearray(buffer.getvalue())
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * entries, 12):
        if struct.unpack_from("<H", data, entry)[0] == 270:
            struct.pack_into("<I", data, entry + 8, len(data) + 1000)
    path.write_bytes(bytes(data))
    assert np.asarray(tifffile.imread(path)).size   # tifffile steps over the tag, logging it


def test_tifffile_s_own_log_lines_stay_out_of_the_cli_s_stderr_unless_debug(tiny_model_dir, tmp_path):
    """A user test: "<TiffTag.fromfile> raised TiffFileError(...)" twice, between the progress
    lines, for a tag tifffile stepped over."""
    (tmp_path / "in").mkdir()
    damaged_tag_tiff(tmp_path / "in" / "tag.tif")
    quiet = run_cli("segment", tmp_path / "in", "--out", tmp_path / "out", "--model", tiny_model_dir)
    assert quiet.returncode == 0, quiet.stderr
    assert "tag.tif" in quiet.stderr and "TiffTag" not in quiet.stderr
    debug = run_cli("segment", tmp_path / "in", "--out", tmp_path / "out2", "--model", tiny_model_dir, "--debug")
    assert "<TiffTag.fromfile> raised" in debug.stderr
