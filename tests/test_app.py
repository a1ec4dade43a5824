"""The Streamlit page, run for real by Streamlit's AppTest on the bundled model."""

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from nuclei_app.imageio import read_image, to_uint8

from .conftest import PROJECT, SAMPLES, on_canvas

APP = str(PROJECT / "app.py")


def nuclei_count(at) -> list[int]:
    return [int(m.value) for m in at.metric if m.label == "Nuclei"]


@pytest.fixture
def app(monkeypatch):
    monkeypatch.delenv("NUCLEI_MODEL", raising=False)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def png_bytes(path) -> bytes:
    return path.read_bytes()


def test_starts_on_the_bundled_model(app):
    assert "Upload images or tick a sample" in app.info[0].value
    assert not app.warning  # no fallback notice
    (line,) = [m.value for m in app.sidebar.markdown if "In use" in m.value]
    assert "the bundled model, version" in line and "/" not in line  # no server folder (a user test)
    assert any(m.value.startswith("Validation (DSB2018, 20% held out by source group)\n\n| kind |")
               for m in app.sidebar.markdown)


def test_a_model_scored_on_a_training_image_shows_no_confidence(tiny_model_dir, monkeypatch):
    """A run on too few images for a split validated on one it trained on: that score is no
    confidence for a user's image (the page quoted it as a validation score)."""
    monkeypatch.setenv("NUCLEI_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.checkbox(key="sample_tissue_he").check().run()
    assert not at.exception, at.exception
    assert not any("| kind |" in m.value for m in at.sidebar.markdown)
    assert any(c.value.startswith("Scored on an image it trained on") for c in at.sidebar.caption)
    notes = [w.value for w in at.warning] + [c.value for c in at.caption]
    assert any("The model was scored on an image it trained on (too few images" in n for n in notes)
    assert not any("validation mean AP" in n for n in notes)


@pytest.mark.parametrize("mean_ap", [0.8, 0.3])   # a caption, and a weak kind's warning
def test_a_model_held_out_by_image_says_so_beside_its_score(mean_ap, tiny_model_dir, tmp_path, monkeypatch):
    """A lab's model held out by image from one source: its kind score flatters it, and the page
    says so in the words ``info`` and ``segment`` use."""
    import json
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "lab_model")
    metadata = json.loads((folder / "nuclei.json").read_text())
    metadata["training"]["images"] = {"train": 6, "validation": 2, "validation_is_training": False,
                                      "validation_by_image": True}
    metadata["metrics"]["validation"]["tissue"] = {"images": 2, "mean_ap": mean_ap, "ap50": 0.9}
    (folder / "nuclei.json").write_text(json.dumps(metadata))
    monkeypatch.setenv("NUCLEI_MODEL", str(folder))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.checkbox(key="sample_tissue_he").check().run()
    assert not at.exception, at.exception
    notes = [c.value for c in at.caption] + [w.value for w in at.warning]
    expected = ("validation mean AP on this kind 0.80 (2 images; held out by image from one source" if mean_ap > 0.5
                else "validation mean AP on this kind is only 0.30 (2 validation images; held out by image from one")
    assert any(expected in note for note in notes), notes


def test_sample_is_segmented_with_a_plausible_count(app):
    app.checkbox(key="sample_fluorescence_sparse").check().run()
    assert not app.exception
    (count,) = nuclei_count(app)
    assert 27 <= count <= 51  # ground truth: 39
    mean_ap = [float(m.value) for m in app.metric if m.label == "DSB mean AP"]
    assert mean_ap and mean_ap[0] > 0.3  # compared with the sample's own ground truth


def test_a_binary_ground_truth_that_merged_touching_nuclei_is_warned_of(app):
    """A user test: the same truth scored mean AP 0.33 as a binary mask and 0.44 as a label
    image; only the uploader's tooltip said that touching nuclei count as one."""
    app.checkbox(key="sample_fluorescence_dense").check().run()
    assert not app.warning   # the sample's own truth is a label image
    truth = np.asarray(Image.open(SAMPLES / "ground_truth" / "fluorescence_dense.png"))
    buffer = io.BytesIO()
    Image.fromarray(((truth > 0) * 255).astype(np.uint8)).save(buffer, "PNG")
    (uploader,) = [u for u in app.file_uploader if u.key and u.key.startswith("truth_")]
    uploader.set_value(("mask.png", buffer.getvalue(), "image/png")).run()
    assert not app.exception and not app.error
    (warning,) = [w.value for w in app.warning]
    assert warning.startswith("The ground truth is a binary mask, in which touching nuclei are one object: ")
    assert "each hold two or more of the nuclei found" in warning


def test_a_micrograph_given_as_its_own_ground_truth_is_warned_of(app):
    """A user test: the image uploaded as its ground truth scored "True / found 8009 / 262",
    mean AP 0.000, with no word: every grey level was counted as one nucleus."""
    app.checkbox(key="sample_fluorescence_dense").check().run()
    (uploader,) = [u for u in app.file_uploader if u.key and u.key.startswith("truth_")]
    image = png_bytes(SAMPLES / "images" / "fluorescence_dense.png")
    uploader.set_value(("fluorescence_dense.png", image, "image/png")).run()
    assert not app.exception and not app.error
    (warning,) = [w.value for w in app.warning]
    assert warning.startswith("The ground truth does not look like a label image: its ")
    assert "not the micrograph" in warning


def test_upload_is_segmented(app):
    data = png_bytes(SAMPLES / "images" / "tissue_he.png")
    app.file_uploader[0].set_value(("my tissue.png", data, "image/png")).run()
    assert not app.exception and not app.error
    (count,) = nuclei_count(app)
    assert 60 <= count <= 130  # ground truth: 98 nuclei (the bundled model finds 72)
    assert any("my tissue" in s.value for s in app.subheader)
    # Named as a batch run names the same file, so the two CSVs join on ``image``.
    assert {"my tissue_labels.png", "my tissue_measurements.csv"} <= set(app.session_state["_downloads"])


def test_broken_upload_reports_and_others_still_run(app):
    good = png_bytes(SAMPLES / "images" / "brightfield.png")
    app.file_uploader[0].set_value([("broken.png", b"\x89PNG\r\n\x1a\nnot really", "image/png"),
                                    ("good.png", good, "image/png")]).run()
    assert not app.exception
    assert len(app.error) == 1 and "broken" in app.error[0].value and "damaged" in app.error[0].value
    assert len(nuclei_count(app)) == 1
    # A user test: the ZIP's summary.csv listed only the images that worked; as the CLI's, it
    # keeps a row for the failed one, saying why (in page order)
    summary = zip_summary(app)
    assert list(summary.index) == ["broken", "good"]
    assert "damaged" in summary.loc["broken", "status"] and summary.loc["good", "status"] == "ok"
    assert summary.loc["broken", "file"] == "broken.png" and summary.loc["broken", "nuclei"] == ""
    assert any("Not segmented: broken.png" in c.value for c in app.caption)


def test_a_z_stack_upload_says_which_plane_was_segmented(app):
    import numpy as np
    import tifffile

    plane = (read_image(SAMPLES / "images" / "fluorescence_sparse.png")[..., 0] * 255).astype(np.uint8)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.stack([plane, plane // 4, plane // 8]), imagej=True, metadata={"axes": "ZYX"})
    app.file_uploader[0].set_value(("stack.tif", buffer.getvalue(), "image/tiff")).run()
    assert not app.exception and not app.error and len(nuclei_count(app)) == 1
    (note,) = [i.value for i in app.info if "stack.tif: a stack of 3 Z planes: the first is segmented" in i.value]
    # The page's own control, not the command line's option (a user test).
    assert "(Z plane, under Nucleus diameter, channel and pixel size)" in note and "--z-plane" not in note


def test_a_z_stack_s_plane_is_chosen_on_the_page(app):
    """The first plane (blurred) by default; "The sharpest plane" segments the in-focus one, as
    that plane uploaded alone; the projection and a plane by number too."""
    import tifffile
    from scipy import ndimage

    sharp = (read_image(SAMPLES / "images" / "fluorescence_sparse.png")[..., 0] * 255).astype(np.uint8)
    stack = np.stack([ndimage.gaussian_filter(sharp, 6), sharp, ndimage.gaussian_filter(sharp, 4)])
    buffer, alone = io.BytesIO(), io.BytesIO()
    tifffile.imwrite(buffer, stack, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(alone, sharp)
    app.file_uploader[0].set_value([("stack.tif", buffer.getvalue(), "image/tiff"),
                                    ("sharp.tif", alone.getvalue(), "image/tiff")]).run()
    assert not app.exception and not app.error
    blurred_count, sharp_count = nuclei_count(app)
    (control,) = [s for s in app.selectbox if s.label == "Z plane"]   # the stack only
    assert control.options == ["Plane 0", "Plane 1", "Plane 2", "The sharpest plane", "Maximum-intensity projection"]
    assert control.value is None   # the first plane, as the CLI's default, until one is chosen
    control.set_value("focus").run()
    assert not app.exception and not app.error
    assert nuclei_count(app) == [sharp_count, sharp_count] and sharp_count != blurred_count
    assert any("stack.tif: a stack of 3 Z planes: plane 1, the sharpest, is segmented" in i.value for i in app.info)
    [s for s in app.selectbox if s.label == "Z plane"][0].set_value("max").run()
    assert not app.exception and any("maximum-intensity projection is segmented" in i.value for i in app.info)
    summary = zip_summary(app)   # the ZIP records the plane as the CLI's --z-plane
    assert summary.loc["stack", "settings"].endswith("; z plane max")
    assert "z plane" not in summary.loc["sharp", "settings"]
    [s for s in app.selectbox if s.label == "Z plane"][0].set_value(1).run()
    assert nuclei_count(app) == [sharp_count, sharp_count]


def zip_summary(at):
    import zipfile

    import pandas as pd

    with zipfile.ZipFile(io.BytesIO(at.session_state["_downloads"]["nuclei_results.zip"]())) as archive:
        return pd.read_csv(archive.open("summary.csv"), keep_default_na=False).set_index("image")


def test_threshold_changes_the_count(app):
    app.checkbox(key="sample_fluorescence_dense").check().run()
    before = nuclei_count(app)[0]
    app.slider(key="threshold").set_value(0.1).run()
    after = nuclei_count(app)[0]
    assert after != before
    app.button[0].click().run()  # reset to the model's defaults
    assert nuclei_count(app)[0] == before


def test_opacity_does_not_run_the_network_again(app, monkeypatch):
    import nuclei_app.pipeline as pipeline

    calls = []
    original = pipeline.predict
    monkeypatch.setattr(pipeline, "predict", lambda *a, **k: calls.append(1) or original(*a, **k))
    app.checkbox(key="sample_tissue_he").check().run()
    assert len(calls) == 1
    app.slider(key="opacity").set_value(0.2).run()
    app.radio(key="style").set_value("instances").run()
    app.slider(key="threshold").set_value(0.3).run()  # post-processing only
    assert len(calls) == 1 and not app.exception


def test_the_zip_says_how_long_each_image_took(app):
    """A user test found the ZIP's seconds column empty. The time is the segmentation's, kept
    across reruns that don't segment again."""
    app.checkbox(key="sample_fluorescence_sparse").check().run()
    app.checkbox(key="sample_brightfield").check().run()
    seconds = zip_summary(app)["seconds"]
    assert seconds.dtype == float and ((seconds > 0) & (seconds < 120)).all()
    app.slider(key="opacity").set_value(0.2).run()
    assert zip_summary(app)["seconds"].equals(seconds)


def test_the_zip_holds_the_scores_of_the_images_compared_with_a_ground_truth(app):
    """A user kept only a screenshot of the comparison: the ZIP's ground_truth_scores.csv has each
    compared image's scores as its card shows them, and no row for an image without a truth."""
    import zipfile

    import pandas as pd

    app.checkbox(key="sample_fluorescence_sparse").check().run()
    page_ap = [m.value for m in app.metric if m.label == "DSB mean AP"]
    (upload,) = [u for u in app.file_uploader if not (u.key or "").startswith("truth_")]
    upload.set_value(("cells.png", (SAMPLES / "images" / "brightfield.png").read_bytes(), "image/png")).run()
    assert not app.exception
    with zipfile.ZipFile(io.BytesIO(app.session_state["_downloads"]["nuclei_results.zip"]())) as archive:
        scores = pd.read_csv(archive.open("ground_truth_scores.csv")).set_index("image")
    assert list(scores.index) == ["fluorescence_sparse"] and len(page_ap) == 1
    assert set(zip_summary(app).index) == {"fluorescence_sparse", "cells"}   # both segmented, one compared
    assert f"{scores.loc['fluorescence_sparse', 'mean_ap']:.3f}" == page_ap[0]
    assert scores.loc["fluorescence_sparse", "n_true"] == 39   # the sample's truth


def test_downloads_are_offered(app):
    app.checkbox(key="sample_brightfield").check().run()
    app.checkbox(key="sample_tissue_he").check().run()
    buttons = app.get("download_button")
    labels = [b.proto.label for b in buttons]
    assert labels.count("Labels (16-bit PNG)") == 2 and labels.count("Measurements CSV") == 2
    assert "Download everything (ZIP)" in labels


def test_one_image_has_its_zip_with_the_run_s_summary_and_no_batch_table(app):
    app.checkbox(key="sample_brightfield").check().run()
    assert "Download everything (ZIP)" in [b.proto.label for b in app.get("download_button")]
    summary = zip_summary(app)
    assert list(summary.index) == ["brightfield"] and summary.loc["brightfield", "diameter_source"] == "estimated"
    assert not [s for s in app.subheader if s.value.endswith("segmented")]   # no one-row table repeating the card


def test_hub_failure_shows_a_notice_and_uses_the_bundled_model(hub, repo_id, monkeypatch):
    monkeypatch.setenv("NUCLEI_MODEL", f"hf://{repo_id}@main")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    assert len(at.warning) == 1
    notice = at.warning[0].value
    assert f"hf://{repo_id}@main" in notice and "repository not found" in notice and "bundled" in notice
    at.checkbox(key="sample_fluorescence_sparse").check().run()
    assert nuclei_count(at)[0] > 0  # and it still works


def test_diameter_control_shows_the_estimate_and_overrides_it(app):
    app.checkbox(key="sample_fluorescence_sparse").check().run()
    estimate = [m.value for m in app.metric if m.label == "Diameter used"]
    assert estimate and estimate[0].endswith(" px")
    import hashlib

    digest = hashlib.sha256((SAMPLES / "images" / "fluorescence_sparse.png").read_bytes()).hexdigest()[:16] + "_1"
    app.toggle(key=f"diameter_manual_{digest}").set_value(True).run()
    (control,) = [n for n in app.number_input if n.label == "Nucleus diameter (px)"]
    assert abs(control.value - float(estimate[0].split()[0])) < 0.11  # starts at the estimate
    control.set_value(14.0).run()   # the sample's nuclei: 12.4 px (ground truth)
    assert not app.exception
    assert [m.value for m in app.metric if m.label == "Diameter used"] == ["14.0 px"]
    assert not [w for w in app.warning if "looks wrong" in w.value]
    control.set_value(45.0).run()   # 3.6x: a diameter typed in µm, or another magnification's
    assert [m.value for m in app.metric if m.label == "Diameter used"] == ["45.0 px"]
    (doubt,) = [w.value for w in app.warning if "looks wrong" in w.value]
    assert "The diameter given, 45 px, looks wrong for this image" in doubt
    assert "Set the nucleus diameter by hand" in doubt


def test_a_noise_only_upload_is_told_it_holds_no_nuclei(app):
    """A user test: an empty field came back as hundreds of 2-3 px "nuclei" with no word."""
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((96, 96)) * 40).astype(np.uint8)).save(buffer, "PNG")
    app.file_uploader[0].set_value(("empty well.png", buffer.getvalue(), "image/png")).run()
    assert not app.exception
    (note,) = [w.value for w in app.warning if "empty field" in w.value]
    assert note.startswith("**empty well.png**: Hardly any contrast above the image's noise (an empty field?)")
    assert nuclei_count(app)[0] == 0
    # No kind, and no caution, made up from the noise (it was cautioned as brightfield).
    assert not [text for text in [w.value for w in app.warning] + [c.value for c in app.caption]
                if "Looks like" in text]
    (diameter,) = [m for m in app.metric if m.label == "Diameter used"]
    assert diameter.proto.help.startswith("The model's own: the image has hardly any contrast")
    assert diameter.value == "16.0 px (model's)" and "resized" not in diameter.proto.help
    assert any(i.value.startswith("No nuclei found: the field has hardly any contrast") for i in app.info)
    assert not [i.value for i in app.info if "lower threshold" in i.value]   # not advice that finds the noise


def test_minimum_size_is_automatic_until_typed_and_then_counts_image_pixels(app):
    """The dense sample's nuclei are ~25 px across: the tuned size (at the model's 16 px
    nuclei) scales up for them; a size typed in counts the image's own pixels, as the table's
    areas do (it once counted pixels at the model's scale: 300 kept 16 nuclei of 173)."""
    app.checkbox(key="sample_fluorescence_dense").check().run()
    (control,) = [n for n in app.number_input if n.label == "Minimum nucleus size (px)"]
    assert control.value is None                       # automatic
    automatic = nuclei_count(app)[0]
    control.set_value(300).run()
    assert not app.exception
    (table,) = [d.value for d in app.dataframe if "area_px" in d.value.columns]
    assert table["area_px"].min() >= 300
    assert 0.6 * automatic < nuclei_count(app)[0] < automatic   # most of its nuclei are larger


def test_page_names_the_image_kind_and_cautions_where_weak(app):
    app.checkbox(key="sample_tissue_he").check().run()
    notes = [w.value for w in app.warning] + [c.value for c in app.caption]
    assert any("stained tissue" in n and "validation mean AP" in n for n in notes)
    # The ZIP's record says it too, as the CLI's summary.csv does (a trial found its notes empty).
    from nuclei_app.kinds import kind_caution
    from nuclei_app.model import load_model_folder

    caution = kind_caution(load_model_folder(PROJECT / "assets" / "model").scores_for_new_images, "tissue")
    notes = zip_summary(app).loc["tissue_he", "notes"]
    assert notes.endswith(caution) if caution else "validation mean AP" not in notes   # weak today: 0.40


def six_uploads():
    """Three files sharing the stem 'cells', one image uploaded twice, one hostile name."""
    image = lambda name: (SAMPLES / "images" / name).read_bytes()  # noqa: E731
    return [("cells.png", image("fluorescence_sparse.png"), "image/png"),
            ("cells.tif", image("brightfield.png"), "image/tiff"),
            ("cells.jpg", image("tissue_he.png"), "image/jpeg"),
            ("dup_a.png", image("fluorescence_dense.png"), "image/png"),
            ("dup_b.png", image("fluorescence_dense.png"), "image/png"),
            ("..\\..\\=evil.png", image("fluorescence_sparse.png"), "image/png")]


def test_same_stems_duplicates_and_hostile_names_keep_every_result_apart(app, monkeypatch):
    import zipfile

    import pandas as pd

    import nuclei_app.pipeline as pipeline
    from nuclei_app.results import unquoted

    app.file_uploader[0].set_value(six_uploads()).run()
    assert not app.exception and not app.error
    assert len(nuclei_count(app)) == 6
    archive = zipfile.ZipFile(io.BytesIO(app.session_state["_downloads"]["nuclei_results.zip"]()))
    names = archive.namelist()
    stems = ["cells", "cells_2", "cells_3", "dup_a", "dup_b", "=evil"]   # the CLI's names for those files
    assert sorted(n for n in names if n.endswith("_labels.png")) == sorted(f"{s}_labels.png" for s in stems)
    assert len(names) == 6 * 8 + 2 and not any(".." in n or "/" in n or "\\" in n for n in names)
    table = pd.read_csv(io.BytesIO(archive.read("measurements.csv")))
    assert "'=evil" in set(table["image"])   # quoted for spreadsheets
    assert sorted(unquoted(table["image"]).unique()) == sorted(stems)
    summary = pd.read_csv(io.BytesIO(archive.read("summary.csv")))
    from nuclei_app.records import SUMMARY_COLUMNS

    assert list(summary.columns) == SUMMARY_COLUMNS   # the CLI's summary.csv: the two concatenate
    assert sorted(unquoted(summary["image"])) == sorted(stems) and list(summary["nuclei"]) == nuclei_count(app)
    assert (summary["status"] == "ok").all() and (summary["width"] > 0).all()
    assert set(summary["diameter_source"]) <= {"estimated", "measured"}
    assert (summary["formats"] == "png,tiff,rois,geojson,intensities").all()   # what the ZIP holds for each
    assert (summary["file_bytes"] > 0).all() and summary["file_modified"].isna().all()   # the upload's size
    kinds = dict(zip(unquoted(summary["image"]), summary["kind"]))   # as the CLI's column says it
    assert (kinds["cells"], kinds["cells_2"], kinds["cells_3"]) == ("fluorescence", "brightfield", "tissue")
    from nuclei_app.model import model_digest

    digest = model_digest(PROJECT / "assets" / "model")
    assert summary["settings"].str.startswith(f"model {digest}; threshold ").all()   # as the CLI records them
    assert summary["settings"].str.contains("; diameter auto; channel auto; precision float32").all()
    assert not summary["file"].str.startswith("=").any()  # the hostile name, quoted for spreadsheets
    calls = []
    original = pipeline.predict
    monkeypatch.setattr(pipeline, "predict", lambda *a, **k: calls.append(1) or original(*a, **k))
    app.slider(key="opacity").set_value(0.3).run()
    app.slider(key="opacity").set_value(0.9).run()
    assert calls == [] and not app.exception


def test_every_download_is_the_clis_file(app, tmp_path):
    """The four samples: the app's files and the CLI's are the same bytes (same pipeline,
    float32 probabilities on the same kernels, deterministic encoders)."""
    import subprocess
    import sys

    stems = [p.stem for p in sorted((SAMPLES / "images").glob("*.png"))]
    for stem in stems:
        app.checkbox(key=f"sample_{stem}").check().run()
    offered = app.session_state["_downloads"]
    assert {f"tissue_he{suffix}" for suffix in ("_labels.png", "_mask.png", "_overlay.png", "_measurements.csv",
                                                "_labels.tif", "_rois.zip", ".geojson")} <= set(offered)
    subprocess.run([sys.executable, "-m", "nuclei_app", "segment", str(SAMPLES / "images"), "--out", str(tmp_path),
                    "--formats", "all", "--engine", "tensorflow"], check=True, capture_output=True, env=cli_env())
    for stem in stems:
        for suffix in ("_labels.png", "_mask.png", "_labels.tif", "_rois.zip", ".geojson", "_intensities.csv"):
            assert offered[stem + suffix]() == (tmp_path / f"{stem}{suffix}").read_bytes(), stem + suffix


def cli_env():
    import os

    return {k: v for k, v in os.environ.items() if k != "NUCLEI_MODEL"}


def test_more_images_than_the_page_holds_are_named_not_processed(app):
    from nuclei_app.config import AppLimits

    from .conftest import fluorescence_like, synthetic_labels

    def tiny_png(seed):
        buffer = io.BytesIO()
        Image.fromarray(fluorescence_like(synthetic_labels(seed=seed), seed)).save(buffer, format="PNG")
        return buffer.getvalue()
    limit = AppLimits().max_images
    app.file_uploader[0].set_value([(f"field{i:02d}.png", tiny_png(i), "image/png") for i in range(limit + 1)]).run()
    assert not app.exception
    assert any(f"only the first {limit}" in w.value and f"field{limit:02d}.png" in w.value for w in app.warning)
    assert len(nuclei_count(app)) == limit


def test_every_bad_file_of_the_awkward_corpus_gets_its_own_message(app, tmp_path):
    from nuclei_app.config import AppLimits

    from .awkward_files import ERROR, OK, write_corpus

    cases = write_corpus(tmp_path / "corpus")
    files = [c for c in cases if (tmp_path / "corpus" / c.name).is_file() and not (tmp_path / "corpus" / c.name).is_symlink()
             and c.name.isprintable()]
    bad = [c for c in files if c.outcome == ERROR]
    good = [c for c in files if c.outcome == OK][:2]
    assert len(bad) >= 25
    per_page = AppLimits().max_images - len(good)
    for start in range(0, len(bad), per_page):
        chunk = bad[start:start + per_page] + good
        uploads = [(c.name.rsplit("/", 1)[-1], (tmp_path / "corpus" / c.name).read_bytes(), "image/png") for c in chunk]
        app.file_uploader[0].set_value(uploads).run()
        assert not app.exception
        errors = [e.value for e in app.error]
        for case, (label, _, _) in zip(chunk, uploads):
            if case.outcome == ERROR:
                mine = [e for e in errors if label in e]
                assert len(mine) == 1 and case.reason in mine[0], (case, errors)
        assert len(errors) == len(chunk) - len(good) and len(nuclei_count(app)) == len(good)


def test_memory_limits_refuse_with_a_reason_and_keep_the_rest(monkeypatch):
    import numpy as np
    import nuclei_app.config as config

    small_page = config.AppLimits(max_page_pixels=300_000, max_image_pixels=1_000_000, max_blockwise_pixels=4_000_000)
    monkeypatch.setattr(config, "AppLimits", lambda: small_page)  # the page reads its limits at each run
    monkeypatch.delenv("NUCLEI_MODEL", raising=False)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()

    def png(shape):
        buffer = io.BytesIO()
        Image.fromarray(np.zeros(shape, np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()
    sample = png_bytes(SAMPLES / "images" / "tissue_he.png")  # 320x256: 82k pixels
    uploads = [("huge.png", png((2100, 2100)), "image/png"), ("first.png", sample, "image/png"),
               ("wide.png", png((300, 900)), "image/png"), ("second.png", sample, "image/png")]
    at.file_uploader[0].set_value(uploads).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("huge.png" in e and "4 megapixels this shared web app segments" in e for e in errors)
    assert any("wide.png" in e and "a page may hold" in e for e in errors)
    assert len(nuclei_count(at)) == 2  # first and second still fit the page
    status = zip_summary(at)["status"]
    assert "4 megapixels this shared web app segments" in status["huge"] and "a page may hold" in status["wide"]
    assert list(status.index) == ["huge", "first", "wide", "second"]


def test_a_large_upload_is_segmented_block_by_block_like_the_cli(monkeypatch, tmp_path):
    """Over AppLimits.max_image_pixels the page segments block by block (bounded memory) and
    offers the CLI's huge-image files; the count agrees with the whole image's."""
    import numpy as np
    import tifffile

    import nuclei_app.config as config
    from nuclei_app.imageio import to_uint8

    default, blockwise = config.AppLimits(), config.AppLimits(max_image_pixels=200_000)
    monkeypatch.setattr(config, "AppLimits", lambda: blockwise)  # the page reads its limits at each run
    monkeypatch.delenv("NUCLEI_MODEL", raising=False)
    tile = to_uint8(read_image(SAMPLES / "images" / "fluorescence_dense.png"))
    field = np.tile(tile, (2, 2, 1))[:600, :600]  # 360,000 px: over the limit, so block by block
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, field)
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.file_uploader[0].set_value(("plate field.tif", buffer.getvalue(), "image/tiff")).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert any("block by block" in i.value and "outlines whatever the overlay style" in i.value for i in at.info)
    labels_shown = [b.proto.label for b in at.get("download_button")]
    assert "Overlay PNG (reduced)" in labels_shown and "Overlay PNG" not in labels_shown   # a user test: not full size
    (count,) = nuclei_count(at)
    at.run()   # any rerun (a slider moved): the card broke here once (a cached object of a redefined class)
    assert not at.exception and not at.error and nuclei_count(at) == [count], [e.value for e in at.error]
    monkeypatch.setattr(config, "AppLimits", lambda: default)
    whole = AppTest.from_file(APP, default_timeout=300)
    whole.run()
    whole.file_uploader[0].set_value(("plate field.tif", buffer.getvalue(), "image/tiff")).run()
    (whole_count,) = nuclei_count(whole)
    assert whole_count > 100 and abs(count - whole_count) <= 0.03 * whole_count
    files = at.session_state["_downloads"]
    assert set(files) == {"plate field_labels.tif", "plate field_overlay.png", "plate field_measurements.csv",
                          "plate field_intensities.csv", "nuclei_results.zip"}
    assert list(zip_summary(at).index) == ["plate field"]   # one image's ZIP, with its record
    labels = tifffile.imread(io.BytesIO(files["plate field_labels.tif"]()))
    assert labels.shape == (600, 600) and len(np.unique(labels)) - 1 == count
    assert files["plate field_measurements.csv"]().count(b"\n") == count + 1
    intensities = downloaded_csv(at, "plate field_intensities.csv")
    assert list(intensities["nucleus"]) == list(range(1, count + 1))
    assert list(intensities.columns[:5]) == ["image", "nucleus", "mean_c0", "max_c0", "integrated_c0"]


def test_a_field_on_a_blank_canvas_says_where_the_field_is_and_counts_as_alone(app):
    field = to_uint8(read_image(SAMPLES / "images" / "tissue_he.png"))
    canvas = on_canvas(field, (field.shape[0] + 100, field.shape[1] + 200), (100, 200), 0)

    def counted(name: str, image: np.ndarray) -> list[int]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        app.file_uploader[0].set_value([(name, buffer.getvalue(), "image/png")]).run()
        assert not app.exception and not app.error
        return nuclei_count(app)

    assert counted("alone.png", field) == counted("export.png", canvas)
    (note,) = [i.value for i in app.info if "blank canvas" in i.value]
    assert note.startswith(f"**export.png**: The field of view, rows 100-{99 + field.shape[0]} and columns 200-")
    assert not [w for w in app.warning if "canvas" in w.value]


def test_an_image_without_nuclei_shows_no_areas(app):
    buffer = io.BytesIO()
    Image.fromarray(np.full((96, 96), 12, np.uint8)).save(buffer, format="PNG")   # an empty, dark field
    app.file_uploader[0].set_value([("empty.png", buffer.getvalue(), "image/png")]).run()
    assert not app.exception and nuclei_count(app) == [0]
    areas = {m.label: m.value for m in app.metric if m.label in ("Median area", "Mean area")}
    assert areas == {"Median area": "–", "Mean area": "–"}


def test_the_page_s_notes_name_its_controls_not_the_command_line_s(app):
    """A user test: the page told a web user to use --z-plane; the readers' advice is put in
    the page's words (``page_note``), tested here so a rewording can't slip past it."""
    import tifffile

    plane = (read_image(SAMPLES / "images" / "fluorescence_sparse.png")[..., 0] * 255).astype(np.uint8)
    stack = io.BytesIO()
    tifffile.imwrite(stack, np.stack([plane, plane // 4]), imagej=True, metadata={"axes": "ZYX"})
    odd_size = calibrated_tiff(SAMPLES / "images" / "fluorescence_sparse.png", 200.0)   # not a microscope's
    app.file_uploader[0].set_value([("stack.tif", stack.getvalue(), "image/tiff"),
                                    ("odd.ome.tif", odd_size, "image/tiff")]).run()
    assert not app.exception and not app.error
    notes = [i.value for i in app.info] + [w.value for w in app.warning]
    assert any("(Z plane, under Nucleus diameter, channel and pixel size)" in n for n in notes), notes
    assert any("type the right size under Nucleus diameter, channel and pixel size" in n for n in notes), notes
    assert not [n for n in notes if "--" in n], notes


def calibrated_tiff(path, pixel_um: float, **kwargs) -> bytes:
    import tifffile

    from nuclei_app.imageio import to_uint8

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, to_uint8(read_image(path))[..., 0], ome=True,
                     metadata={"PhysicalSizeX": pixel_um, "PhysicalSizeY": pixel_um}, **kwargs)
    return buffer.getvalue()


def downloaded_csv(at, name: str):
    import pandas as pd

    return pd.read_csv(io.BytesIO(at.session_state["_downloads"][name]()))


def test_the_file_s_pixel_size_gives_areas_in_um_and_a_typed_one_replaces_it(app):
    """An OME-TIFF's pixel size fills the field: areas in µm² on the page, µm columns in the
    downloads, the label TIFF calibrated; a PNG has none (px only) until one is typed."""
    import zipfile

    import pandas as pd

    from nuclei_app.calibration import read_pixel_size

    tiff = calibrated_tiff(SAMPLES / "images" / "fluorescence_dense.png", 0.325)
    plain = png_bytes(SAMPLES / "images" / "fluorescence_sparse.png")
    app.file_uploader[0].set_value([("dapi.ome.tif", tiff, "image/tiff"), ("plain.png", plain, "image/png")]).run()
    assert not app.exception and not app.error
    fields = [n for n in app.number_input if n.label == "Pixel size (µm)"]
    assert [f.value for f in fields] == [0.325, None]
    medians = [m.value for m in app.metric if m.label == "Median area"]
    assert medians[0].endswith(" µm²") and medians[1].endswith(" px")
    assert [m.value for m in app.metric if m.label == "Diameter used"][1].endswith(" px")   # no pixel size yet
    table = downloaded_csv(app, "dapi_measurements.csv")
    assert len(table) > 50 and np.allclose(table["area_um2"], table["area_px"] * 0.325 ** 2)
    assert downloaded_csv(app, "plain_measurements.csv")["area_um2"].isna().all()
    assert read_pixel_size(app.session_state["_downloads"]["dapi_labels.tif"]()).size.um == pytest.approx(0.325)
    assert read_pixel_size(app.session_state["_downloads"]["plain_labels.tif"]()).size is None
    (table,) = [d for d in app.dataframe if "Pixel size (µm)" in d.value.columns]
    overview = table.value
    assert list(overview["Pixel size (µm)"]) == ["0.325", ""]   # not the word "None" (a user test)
    assert table.proto.placeholder == "–"   # nor an empty image's sizes (an app trial): as its card shows them

    fields[1].set_value(0.5).run()   # typed for the PNG
    assert not app.exception
    assert [m.value for m in app.metric if m.label == "Median area"][1].endswith(" µm²")
    diameters = [m.value for m in app.metric if m.label == "Diameter used"]
    assert diameters[0].endswith(" µm") and diameters[1].endswith(" µm")   # as the areas, and the CLI's log
    table = downloaded_csv(app, "plain_measurements.csv")
    assert len(table) > 10 and np.allclose(table["diameter_um"], table["diameter_px"] * 0.5)
    assert read_pixel_size(app.session_state["_downloads"]["plain_labels.tif"]()).size.um == pytest.approx(0.5)
    with zipfile.ZipFile(io.BytesIO(app.session_state["_downloads"]["nuclei_results.zip"]())) as archive:
        summary = pd.read_csv(archive.open("summary.csv")).set_index("image")
    assert summary.loc["dapi", "pixel_size_um"] == 0.325
    assert summary.loc["dapi", "pixel_size_source"] == "OME-TIFF metadata"
    assert summary.loc["plain", "pixel_size_um"] == 0.5 and summary.loc["plain", "pixel_size_source"] == "given"
    assert summary.loc["plain", "settings"].endswith("; pixel size 0.5 µm")
    assert "pixel size" not in summary.loc["dapi", "settings"]   # the file's own: as the CLI without --pixel-size
    [n for n in app.number_input if n.label == "Pixel size (µm)"][0].set_value(0.65).run()   # over the file's
    assert any("dapi.ome.tif: the pixel size given, 0.65 µm, is used; the file says 0.325 µm per pixel (OME-TIFF "
               "metadata)" in i.value for i in app.info)


def test_a_large_upload_s_measurements_use_its_pixel_size(monkeypatch):
    import nuclei_app.config as config
    from nuclei_app.calibration import read_pixel_size

    blockwise = config.AppLimits(max_image_pixels=100_000)
    monkeypatch.setattr(config, "AppLimits", lambda: blockwise)  # the page reads its limits at each run
    monkeypatch.delenv("NUCLEI_MODEL", raising=False)
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    data = calibrated_tiff(SAMPLES / "images" / "fluorescence_dense.png", 0.2)   # 362k px: block by block
    at.file_uploader[0].set_value(("big.ome.tif", data, "image/tiff")).run()
    assert not at.exception and any("block by block" in i.value for i in at.info)
    assert [n.value for n in at.number_input if n.label == "Pixel size (µm)"] == [0.2]
    assert set(at.session_state["_downloads"]) == {"big_labels.tif", "big_overlay.png", "big_measurements.csv",
                                                   "big_intensities.csv", "nuclei_results.zip"}
    table = downloaded_csv(at, "big_measurements.csv")
    assert len(table) > 50 and np.allclose(table["area_um2"], table["area_px"] * 0.04)
    assert read_pixel_size(at.session_state["_downloads"]["big_labels.tif"]()).size.um == pytest.approx(0.2)
    (field,) = [n for n in at.number_input if n.label == "Pixel size (µm)"]
    field.set_value(0.4).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert np.allclose(downloaded_csv(at, "big_measurements.csv")["area_um2"], table["area_px"] * 0.16)
    # The label TIFF follows the page's pixel size too (written with the file's, set on download).
    assert read_pixel_size(at.session_state["_downloads"]["big_labels.tif"]()).size.um == pytest.approx(0.4)
    assert any("big.ome.tif: the pixel size given, 0.4 µm, is used; the file says 0.2 µm per pixel" in i.value
               for i in at.info)


def test_the_channel_picker_names_the_automatic_choice_and_rgb_colours(app):
    """A user test: "Automatic" did not say which channel it used, "Channel 2" of an RGB
    composite read as green, and a wrong channel's empty result advised the threshold only."""
    from scipy import ndimage

    nuclei = np.asarray(Image.open(SAMPLES / "images" / "fluorescence_sparse.png").convert("L"))
    cytoplasm = ndimage.grey_dilation(nuclei, size=(15, 15)) // 2
    composite = np.stack([np.zeros_like(nuclei), cytoplasm, nuclei], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(composite).save(buffer, format="PNG")
    app.file_uploader[0].set_value(("composite.png", buffer.getvalue(), "image/png")).run()
    assert not app.exception
    (picker,) = [s for s in app.selectbox if s.label == "Channel holding the nuclei"]
    assert picker.options[0] == "Automatic: channel 2 (blue)" and "Channel 1 (green)" in picker.options
    assert [m.value for m in app.metric if m.label == "Channel"] == ["2 (blue)"]
    assert nuclei_count(app)[0] > 20
    picker.set_value(0).run()   # red: empty
    assert nuclei_count(app) == [0]
    assert any("try the automatic channel, a lower threshold" in i.value for i in app.info)
    picker.set_value(1).run()   # green, the cytoplasm: segmented as asked, with a note naming the automatic choice
    assert [m.value for m in app.metric if m.label == "Channel"] == ["1 (green)"]
    assert any("Segmented on channel 1, as asked; the automatic choice would be channel 2" in w.value
               for w in app.warning), [w.value for w in app.warning]
    picker.set_value("all").run()   # all its colours: said to be the wrong choice here
    assert any("fluorescence composite" in w.value and "channel 2, the automatic choice" in w.value
               for w in app.warning), [w.value for w in app.warning]


def test_a_three_channel_tiff_stack_is_not_offered_as_an_rgb_photograph(app):
    """A trial: a 16-bit stack of three stains offered "All colours (H&E, brightfield)"."""
    import tifffile
    from scipy import ndimage

    nuclei = np.asarray(Image.open(SAMPLES / "images" / "fluorescence_sparse.png").convert("L")).astype(np.uint16)
    cytoplasm = ndimage.grey_dilation(nuclei, size=(15, 15)) // 2
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.stack([cytoplasm, np.zeros_like(nuclei), nuclei]) * 200, imagej=True,
                     metadata={"axes": "CYX"})
    app.file_uploader[0].set_value(("stack.tif", buffer.getvalue(), "image/tiff")).run()
    assert not app.exception
    (picker,) = [s for s in app.selectbox if s.label == "Channel holding the nuclei"]
    assert picker.options[:2] == ["Automatic: channel 2", "All three as colours (an RGB image: H&E, brightfield)"]
    assert [m.value for m in app.metric if m.label == "Channel"] == ["2"]


def test_a_grey_image_s_channel_reads_grey(app):
    app.checkbox(key="sample_fluorescence_sparse").check().run()
    assert [m.value for m in app.metric if m.label == "Channel"] == ["all (grey)"]


def test_a_strip_is_noted_and_shown_by_its_start(app):
    """A user test: a 5000x20 strip was shown as a line 3 px thick and segmented without a word."""
    import re

    strip = read_image(SAMPLES / "images" / "fluorescence_dense.png")[100:124]
    # 24 px tall, 16 x 24 px nuclei long, beginning with 400 px of background.
    strip = np.concatenate([np.zeros_like(strip[:, :400])] + [strip] * 4, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(strip)).save(buffer, "PNG")
    app.file_uploader[0].set_value(("strip.png", buffer.getvalue(), "image/png")).run()
    assert not app.exception and not app.error
    assert any(w.value.startswith("**strip.png**: The image is only 24 px tall") for w in app.warning)
    captions = [image.caption for element in app.get("image") for image in element.proto.imgs]
    (shown,) = {match.group() for c in captions for match in [re.search(r"; shown: px (\d+)-\d+ of 3184", c)] if match}
    assert 376 - 24 <= int(re.search(r"\d+", shown).group()) <= 400  # opens on its nuclei, not its background
    assert sum(shown in caption for caption in captions) == 2, captions  # original, overlay
    assert any(c.value.startswith("Nucleus probability") and shown in c.value for c in app.caption)
    # The ground-truth comparison of a strip pans along it, as the interactive view does.
    truth = np.zeros(strip.shape[:2], np.uint16)
    truth[4:20, 10:26], truth[4:20, 600:616] = 1, 2
    buffer = io.BytesIO()
    Image.fromarray(truth).save(buffer, "PNG")
    (uploader,) = [u for u in app.file_uploader if u.key and u.key.startswith("truth_")]
    uploader.set_value(("strip truth.png", buffer.getvalue(), "image/png")).run()
    assert not app.exception and not app.error
    assert any(chart.key.startswith("comparison_") for chart in app.get("plotly_chart"))
    assert any("Drag to pan along the strip" in c.value for c in app.caption)
