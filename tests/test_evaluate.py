from pathlib import Path

import numpy as np
import pytest

from nuclei_app.config import PostprocessSettings
from nuclei_app.model import load_model_folder
from nuclei_app.pipeline import Prediction
from train.data import targets_from_labels
from train.evaluate import (Original, Tuner, diameter_report, folds, plot_learning_curves, plot_shift_validation,
                            rescaled, score_labels, scoring, stain_shifted, tune)
from train.export import report_tables

from .conftest import synthetic_labels


class NoScaleModel:
    """What ``labels_for`` reads of a model: its tuned settings (the predictions are given)."""
    postprocess_settings = PostprocessSettings()


def case(kind: str, seed: int, group: int):
    labels = synthetic_labels(seed=seed)
    image = np.zeros(labels.shape + (3,), np.float32)
    probabilities = targets_from_labels(labels) * 0.8  # confident, not saturated
    return Original(f"{kind}{seed}", kind, group, image, labels), Prediction(probabilities, 7.0, "estimated", "all")


def test_cross_tuning_scores_each_fold_with_the_other_folds_settings():
    cases = [case("fluorescence", i, group=i) for i in range(4)] + [case("tissue", 9, group=9), case("tissue", 8, group=8)]
    images, predictions = [c[0] for c in cases], [c[1] for c in cases]
    assert sorted(folds(images).tolist()) == [0, 0, 0, 1, 1, 1]
    shipped, per_image = tune(NoScaleModel(), images, predictions)
    assert scoring(images, False, True) == "cross-tuned" and scoring(images[:1], False, True) != "cross-tuned"
    assert len(per_image) == len(images)
    tuner = Tuner(NoScaleModel(), images, predictions)
    assert tuner.aps(shipped).mean() > 0.8  # perfect probabilities: tuning finds settings that score
    report = score_labels(images, [np.asarray(o.labels) for o in images])
    assert report["all"]["mean_ap"] == 1.0 and report["tissue"]["images"] == 2


def test_images_of_one_group_are_not_tuned_on():
    """A trial: a lab's one validation image re-tuned the base's settings to itself and was scored
    with them. Images of one source group can't be scored with settings tuned on others: none are."""
    model = NoScaleModel()
    model.postprocess_settings = PostprocessSettings(threshold=0.6, marker_threshold=0.9, min_size=32)   # a base's
    images, predictions = zip(*[case("tissue", seed, group=5) for seed in range(3)])
    start = model.postprocess_settings
    assert tune(model, list(images), list(predictions)) == (start, [start] * 3)
    assert scoring(list(images), False, True) == "untuned: too few groups"


def test_shift_sets_rescale_images_with_their_masks_and_restain_only_light_images():
    images = [case("fluorescence", 0, 0)[0], case("tissue", 1, 1)[0]]
    images[1].image[:] = 0.8
    doubled = rescaled(images, 2.0)
    assert doubled[0].image.shape[:2] == doubled[0].labels.shape == (192, 192)
    assert set(np.unique(doubled[0].labels)) == set(np.unique(images[0].labels))
    stained = stain_shifted(images)
    assert [o.kind for o in stained] == ["tissue"] and not np.allclose(stained[0].image, 0.8)


def test_restained_sets_change_what_the_stains_are_on_a_real_he_image():
    from nuclei_app.imageio import read_image
    from train.evaluate import LIGHT_SHIFTS, light_shifts, restained

    from .conftest import SAMPLES

    he = read_image(SAMPLES / "images" / "tissue_he.png")[:128, :128]
    labels = np.zeros(he.shape[:2], np.int32)
    images = [Original("he", "tissue", 0, he, labels), Original("fl", "fluorescence", 1, he, labels)]
    assert set(light_shifts(images)) == set(LIGHT_SHIFTS)
    red, _, blue = he.reshape(-1, 3).mean(axis=0)
    (ihc,), (dark,), (grey,) = (restained(images, name) for name in ("ihc", "dark", "grey"))
    ihc_red, _, ihc_blue = ihc.image.reshape(-1, 3).mean(axis=0)
    assert ihc_red - ihc_blue > red - blue + 0.05   # yellow-brown instead of pink-purple
    assert dark.image.mean() < he.mean() - 0.02     # more haematoxylin, darker
    np.testing.assert_allclose(grey.image[..., 0], grey.image[..., 2])
    assert all(o.labels is labels and o.image.dtype == np.float32 for o in (ihc, dark, grey))


def test_diameter_report_compares_with_the_truth():
    original, prediction = case("fluorescence", 0, 0)
    report = diameter_report([original], [prediction])
    assert report["images"] == 1 and report["median_error"] > 0


def test_learning_curves_and_shift_figure(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,body_dice,loss,val_body_dice,val_loss\n0,0.5,1.0,0.4,1.1\n1,0.6,0.8,0.5,0.9\n")
    plot_learning_curves(tmp_path / "log.csv", tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 5000
    scores = {"all": {"mean_ap": 0.5, "images": 2, "ap50": 0.7, "dice": 0.8, "iou": 0.7, "pixel_accuracy": 0.9}}
    report = {"validation": scores, "shift": {"x0.5": scores, "x2": scores, "x3": scores, "grey": scores}}
    plot_shift_validation(report, tmp_path / "shift.png")
    assert (tmp_path / "shift.png").stat().st_size > 5000
    assert "| x3 | 0.500 (2) |" in report_tables(report)


def test_new_scores_are_written_into_a_copy_of_a_real_model_folder(tiny_model_dir, tmp_path):
    """--write: nuclei.json's recomputed scores and the card change, the rest stays."""
    import json
    import shutil

    from nuclei_app.model import verify_folder
    from train.evaluate import rewrite_metrics

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    before = verify_folder(folder)
    scores = {"all": {"mean_ap": 0.4321, "images": 3, "ap50": 0.7, "dice": 0.8, "iou": 0.7, "pixel_accuracy": 0.9}}
    rewrite_metrics(folder, {"validation": scores, "not a metric": 1})
    after = json.loads((folder / "nuclei.json").read_text())
    assert after["metrics"]["validation"] == scores and "not a metric" not in after["metrics"]
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    assert "0.432" in (folder / "README.md").read_text() and "shipped post-processing" not in (folder / "README.md").read_text()
    rewrite_metrics(folder, {"validation": scores, "postprocess_scoring": "shipped"})
    assert "shipped post-processing settings" in (folder / "README.md").read_text()


def test_a_real_run_is_rescored_with_every_shift_and_drawn(tiny_model_dir, tiny_dataset, tmp_path, capsys):
    from train.evaluate import LIGHT_SHIFTS, main

    assert main(["--model", str(tiny_model_dir), "--data", str(tiny_dataset),
                 "--shift-figure", str(tmp_path / "shift.png")]) == 0
    printed = capsys.readouterr().out
    assert "| x0.5 |" in printed and "| x3 |" in printed and (tmp_path / "shift.png").stat().st_size > 5000
    assert not any(f"| {name} |" in printed for name in LIGHT_SHIFTS)   # its split has no light image


def test_max_images_scores_the_first_few_validation_images(tiny_model_dir, tiny_dataset, tmp_path, capsys):
    """A quick check of a model (a trial found only the whole split, 10 minutes for a real one)."""
    import json
    import shutil

    from train.evaluate import main

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    metadata = json.loads((folder / "nuclei.json").read_text())
    ids = sorted(p.name for p in tiny_dataset.iterdir() if p.is_dir())
    metadata["training"]["validation_ids"] = ids   # all four tiny images count as validation here
    (folder / "nuclei.json").write_text(json.dumps(metadata))
    assert len(ids) == 4 and main(["--model", str(folder), "--data", str(tiny_dataset), "--max-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "| all | 2 |" in printed and "The first 2 validation images only (--max-images)" in printed


def test_all_images_scores_a_folder_of_one_s_own_not_the_validation_split(tiny_model_dir, tmp_path, capsys):
    """A lab's own annotated test set (the bundled samples' layout): every image in it is scored,
    though none is among the model's validation ids."""
    from train.evaluate import main

    samples = Path(__file__).resolve().parents[1] / "assets" / "samples"
    count = len(list((samples / "images").iterdir()))
    assert main(["--model", str(tiny_model_dir), "--data", str(samples), "--all-images"]) == 0
    printed = capsys.readouterr().out
    assert f"| all | {count} |" in printed and f"Every annotated image in {samples} (--all-images)" in printed
    assert "Validation split" not in printed and f"digest {load_model_folder(tiny_model_dir).digest()}" in printed
    assert "\n| x1 | " in printed and "(validation)" not in printed   # the shift table's own row, too
    assert "Warning" not in printed   # images the tiny model never trained on
    with pytest.raises(SystemExit):
        main(["--model", str(tiny_model_dir), "--data", str(samples), "--all-images", "--write"])


def test_all_images_warns_where_they_are_the_model_s_own_training_images(tiny_model_dir, tiny_dataset, capsys):
    """A trial scored a fine-tuned model on the 6 images it was trained from, 5 of them trained on."""
    from train.evaluate import main

    assert main(["--model", str(tiny_model_dir), "--data", str(tiny_dataset), "--all-images"]) == 0
    assert ("Warning: these are the images this model was trained from (the same files, by its data_digest): "
            "every one of them was trained on, so these scores flatter it") in capsys.readouterr().out


def test_light_images_are_scored_under_every_stain_shift(tiny_model):
    from nuclei_app.imageio import read_image
    from nuclei_app.label_files import read_labels
    from train.evaluate import LIGHT_SHIFTS, evaluate

    from .conftest import SAMPLES

    images = [Original(name, kind, index, read_image(SAMPLES / "images" / f"{name}.png"),
                       read_labels(SAMPLES / "ground_truth" / f"{name}.png"))
              for index, (name, kind) in enumerate([("fluorescence_sparse", "fluorescence"), ("tissue_he", "tissue"),
                                                    ("brightfield", "brightfield")])]
    report = evaluate(tiny_model, images, tune_enabled=False)
    assert report["postprocess_scoring"] == "untuned"
    assert evaluate(tiny_model, images[:1], shipped=tiny_model.postprocess_settings)["postprocess_scoring"] == "shipped"
    for name in LIGHT_SHIFTS:
        shifted = report["shift"][name]
        assert shifted["all"]["images"] == 2 and "fluorescence" not in shifted
    assert report["shift"]["x2"]["all"]["images"] == 3


def test_write_needs_a_local_folder_and_a_full_evaluation(capsys):
    import pytest

    from train.evaluate import main

    for argv in (["--model", "hf://someone/nuclei", "--write"], ["--holdout-of", "runs/x", "--write"],
                 ["--model", "assets/model", "--write", "--max-images", "3"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and "--write stores a full evaluation" in capsys.readouterr().err


def test_data_without_the_models_validation_images_is_a_clear_error(tiny_model_dir, tiny_dataset, tmp_path, capsys):
    """A --data folder holding none of the ids nuclei.json recorded (another subset, another data
    set): a message naming the folder, not a KeyError from an empty score table."""
    import json
    import shutil

    from train.evaluate import main

    validation = set(json.loads((tiny_model_dir / "nuclei.json").read_text())["training"]["validation_ids"])
    others = [folder for folder in tiny_dataset.iterdir() if folder.name not in validation]
    assert validation and others
    for folder in others:
        shutil.copytree(folder, tmp_path / folder.name)
    assert main(["--model", str(tiny_model_dir), "--data", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"0 of the model's {len(validation)} validation images" in error and str(tmp_path) in error
    assert f"give --data the folder the model was trained on ({tiny_dataset.resolve()})" in error
    assert "Traceback" not in error


def test_write_needs_every_validation_image(tiny_run, tiny_dataset, tmp_path, capsys):
    """A user test: --write with a --data folder holding 1 of 135 validation images replaced the
    bundled model's recorded scores with that one image's."""
    import json
    import shutil

    from train.evaluate import main

    shutil.copytree(tiny_run / "model", tmp_path / "model")
    metadata = json.loads((tmp_path / "model" / "nuclei.json").read_text())
    metadata["training"]["validation_ids"] += ["an_image_not_in_the_folder"]
    (tmp_path / "model" / "nuclei.json").write_text(json.dumps(metadata))
    before = (tmp_path / "model" / "nuclei.json").read_bytes()
    assert main(["--model", str(tmp_path / "model"), "--data", str(tiny_dataset), "--write"]) == 2
    assert "all are needed here" in capsys.readouterr().err
    assert (tmp_path / "model" / "nuclei.json").read_bytes() == before


def test_holdout_of_mistakes_are_clear_errors(tiny_run, tiny_model_dir, tiny_dataset, capsys):
    """A user test: the run's folder, a typo, or a run without a held-out group gave tracebacks."""
    from train.evaluate import main

    common = ["--model", str(tiny_model_dir), "--data", str(tiny_dataset), "--holdout-of"]
    for folder, message in ((tiny_run, "its model folder is"), (tiny_run / "modle", "does not exist"),
                            (tiny_model_dir, "was not trained with --holdout-group")):
        assert main(common + [str(folder)]) == 2
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error, error


def test_every_scoring_pass_runs_with_the_settings_the_folder_will_ship(tiny_model, monkeypatch):
    """The automatic diameter's check measures nuclei with the model's own tuned settings: an
    export scored with the training-time defaults there, and a fine-tuned model's export read
    0.341 where its folder, rescored, gave 0.291."""
    import train.evaluate as evaluation
    from nuclei_app.imageio import read_image
    from nuclei_app.label_files import read_labels

    from .conftest import SAMPLES

    images = [Original(name, "fluorescence", group, read_image(SAMPLES / "images" / f"{name}.png"),
                       read_labels(SAMPLES / "ground_truth" / f"{name}.png"))
              for group, name in enumerate(("fluorescence_sparse", "fluorescence_dense"))]   # two folds
    carried, tuned = [], []
    real_predict, real_tune = evaluation.predict, evaluation.tune
    monkeypatch.setattr(evaluation, "predict", lambda model, *a, **k: carried.append(model.postprocess_settings)
                        or real_predict(model, *a, **k))
    monkeypatch.setattr(evaluation, "tune", lambda *a, **k: tuned.append(real_tune(*a, **k)) or tuned[-1])
    report = evaluation.evaluate(tiny_model, images)
    (shipped, per_image), = tuned
    assert report["postprocess_scoring"] == "cross-tuned" and report["postprocess"] == shipped.model_values()
    assert set(per_image) != {tiny_model.postprocess_settings}   # else this test could not tell
    tuning_passes = len(images)   # the one pass the settings are tuned on
    # Each image's later passes with the settings it is scored with (its fold's), as the folder runs them.
    assert carried[tuning_passes:] == per_image * (len(carried) // len(images) - 1) and len(carried) > 2 * tuning_passes


def test_an_evaluation_whose_tuned_settings_score_lower_ships_and_reports_the_starting_ones(bundled_model,
                                                                                            monkeypatch):
    """The report's validation scores are then those of the first pass with the starting settings,
    and every later pass runs with them."""
    import train.evaluate as evaluation
    from nuclei_app.imageio import read_image
    from nuclei_app.label_files import read_labels

    from .conftest import SAMPLES

    images = [Original(name, "fluorescence", 0, read_image(SAMPLES / "images" / f"{name}.png"),
                       read_labels(SAMPLES / "ground_truth" / f"{name}.png"))
              for name in ("fluorescence_sparse", "fluorescence_dense")]
    start = bundled_model.postprocess_settings
    blind = PostprocessSettings(threshold=0.99, marker_threshold=0.99)   # finds next to nothing
    monkeypatch.setattr(evaluation, "tune", lambda *a, **k: (blind, [blind] * len(images)))
    report = evaluation.evaluate(bundled_model, images)
    first = evaluation.predict_all(bundled_model, images)
    assert report["postprocess_scoring"] == "starting" and report["postprocess"] == start.model_values()
    assert report["validation"] == score_labels(images, evaluation.labels_with(bundled_model, first, [start] * 2))
    assert report["validation"]["all"]["mean_ap"] > 0.3


def test_the_starting_settings_are_kept_where_the_tuned_ones_score_lower_as_shipped():
    """Tuning takes the first pass's scales as given; where the second pass, its diameter check
    measuring with the tuned settings, scores lower than the first did, the first's settings stay."""
    from train.evaluate import scores_with, starting_settings_win

    images, predictions = zip(*[case("tissue", seed, group=0) for seed in (3, 4)])
    start = [PostprocessSettings()] * 2
    blind = [PostprocessSettings(threshold=0.9)] * 2   # bodies are 0.8: finds nothing
    kept, moved_blind = (scores_with(NoScaleModel(), images, predictions, s) for s in (start, blind))
    assert starting_settings_win(kept, moved_blind, start[0])
    assert not starting_settings_win(kept, kept, start[0])
