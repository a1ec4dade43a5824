import io

import numpy as np
import pandas as pd
from PIL import Image

from nuclei_app.batch import collect_images, output_names, segment_paths
from nuclei_app.imageio import read_labels

from .conftest import SAMPLES, fluorescence_like, synthetic_labels


def write_image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(fluorescence_like(synthetic_labels(seed=seed), seed)).save(path)
    return path


def test_collects_recursively_and_reports_missing(tmp_path):
    write_image(tmp_path / "a" / "one.png")
    write_image(tmp_path / "a" / "deeper" / "two.tif")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    found, problems = collect_images([tmp_path / "a", tmp_path / "missing.png"])
    assert [p.name for p in found] == ["two.tif", "one.png"] or [p.name for p in found] == ["one.png", "two.tif"]
    assert problems == [(str(tmp_path / "missing.png"), "no such file or folder")]


def test_output_names_disambiguate_same_file_names(tmp_path):
    first, second = tmp_path / "day1" / "img.png", tmp_path / "day2" / "img.png"
    names = output_names([first, second])
    assert names[first] == "img" and names[second] == "day2_img"


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


def test_an_unexpected_failure_skips_only_that_image(tiny_model, tmp_path, monkeypatch):
    import nuclei_app.batch as batch

    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "b.png", seed=1)
    real = batch.segment

    def failing_on_a(model, image, *args, **kwargs):
        if image.shape[0] == 96 and not failing_on_a.failed:
            failing_on_a.failed = True
            raise RuntimeError("boom")
        return real(model, image, *args, **kwargs)
    failing_on_a.failed = False
    monkeypatch.setattr(batch, "segment", failing_on_a)
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "in"], tmp_path / "out", tiny_model.postprocess_settings, log=log)
    assert result.exit_status == 1 and len(result.processed) == 1
    assert "unexpected RuntimeError: boom" in log.getvalue() and "Traceback" not in log.getvalue()


def test_bundled_model_counts_a_sample_plausibly(bundled_model, tmp_path):
    sample = SAMPLES / "images" / "fluorescence_sparse.png"
    truth = read_labels(SAMPLES / "ground_truth" / "fluorescence_sparse.png").max()
    result = segment_paths(bundled_model, [sample], tmp_path, bundled_model.postprocess_settings, log=io.StringIO())
    assert result.exit_status == 0
    count = read_labels(tmp_path / "fluorescence_sparse_labels.png").max()
    assert 0.7 * truth <= count <= 1.3 * truth, (count, truth)
