import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from nuclei_app.model import load_model_folder
from train.__main__ import config_from_args, parse_args
from train.config import TINY_PRESET, TrainConfig


def test_tiny_run_writes_a_loadable_model_folder(tiny_run):
    model = load_model_folder(tiny_run / "model")
    assert model.metadata["training"]["split_seed"] == 42
    assert model.diameter == TrainConfig().diameter and model.metadata["training"]["validation_ids"]
    assert set(model.metadata["metrics"]["shift"]) == {"x0.5", "x2", "x3"}
    assert set(model.metadata["metrics"]["validation"]["all"]) >= {"mean_ap", "ap50", "dice", "iou", "pixel_accuracy"}
    output = model.predict(np.zeros((1, 64, 64, 3), np.float32))
    assert output.shape == (1, 64, 64, 2)


def test_the_card_of_a_run_on_one_s_own_few_images_says_so(tiny_run):
    """A new-user trial: a 4-image run on the user's own folder had a card claiming DSB2018 and
    its 20 % split, though it validated on a training image."""
    metadata = load_model_folder(tiny_run / "model").metadata
    assert metadata["training"]["images"] == {"train": 4, "validation": 1, "validation_is_training": True,
                                              "validation_by_image": False}
    card = (tiny_run / "model" / "README.md").read_text()
    assert "not DSB2018's training set" in card and "dsb2018" not in card.split("---")[1]
    assert "validated on an image it trained on" in card and "4 training images," in card   # not "and 1 validation"
    assert "for validation by **source group**" not in card   # no split to describe
    assert "1 epoch x 2 steps" in card   # not "1 epochs"
    assert "held-out DSB2018 test set" not in card and "- Images unlike those in `" in card


def test_tiny_run_records_everything(tiny_run):
    for name in ("run.json", "log.csv", "checkpoints/last.keras", "panels/epoch_001.png",
                 "figures/learning_curves.png", "figures/predictions.png", "figures/shift_validation.png"):
        assert (tiny_run / name).is_file(), name
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["config"]["epochs"] == 1 and "command" in run
    assert run["data"]["images"] == 4 and run["data"]["validation_ids"] == ["synthetic0"]   # a training image
    assert load_model_folder(tiny_run / "model").metadata["training"]["data_digest"] == run["data"]["digest"]


def test_resume_checks_the_data_s_content_wherever_it_moved(tiny_run, tiny_dataset, tmp_path, capsys):
    """A run's images are checked on --resume: an image removed from (or added to) its folder mid-run
    would change what it trains on from then on, unrecorded, and could change its split. A moved
    folder with the same files resumes (a trial: each message sent the user to the other)."""
    import shutil

    from train.__main__ import main
    from train.config import portable

    run_folder, data = shutil.copytree(tiny_run, tmp_path / "run"), shutil.copytree(tiny_dataset, tmp_path / "moved")
    record = json.loads((run_folder / "run.json").read_text())
    record["config"]["data"] = portable(tmp_path / "gone")   # where the data was when the run started
    (run_folder / "run.json").write_text(json.dumps(record))
    before = {name: (run_folder / name).read_bytes() for name in ("run.json", "log.csv", "checkpoints/state.json")}
    resume = ["--resume", "--out", str(run_folder), "--epochs", "2"]
    assert main(resume) == 2
    err = capsys.readouterr().err
    assert "the data folder this run started on" in err and "if it moved, give its new place with --data" in err
    shutil.rmtree(data / "synthetic3")
    assert main(resume + ["--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"{run_folder} was started on other data: 4 images then, 3 now (removed: synthetic3" in err
    assert "Traceback" not in err
    assert {name: (run_folder / name).read_bytes() for name in before} == before   # nothing trained
    shutil.copytree(tiny_dataset / "synthetic3", data / "synthetic3")
    assert main(resume + ["--data", str(data)]) == 0
    resumed = json.loads((run_folder / "run.json").read_text())
    assert resumed["config"]["data"] == portable(data) and resumed["data"] == record["data"]


def test_resume_continues_from_the_last_epoch(tiny_run, tiny_dataset, tmp_path):
    from train.train import train

    import shutil
    shutil.copytree(tiny_run, tmp_path / "run")
    config = replace(replace(TrainConfig(), **TINY_PRESET), data=tiny_dataset, out=tmp_path / "run", epochs=2, resume=True)
    train(config)
    with open(tmp_path / "run" / "log.csv") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [0, 1]  # epoch 0 from the first run, epoch 1 from the resumed one
    assert json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text())["epochs_done"] == 2
    # The card's command alone would train 1 epoch: the resume that made this model is named too.
    training = load_model_folder(tmp_path / "run" / "model").metadata["training"]
    assert training["epochs"] == 2 and len(training["resumed"]) == 1
    assert f"continued with `{training['resumed'][0]}`" in (tmp_path / "run" / "model" / "README.md").read_text()


def test_resume_refuses_other_settings_and_keeps_the_original_command(tiny_run, tiny_dataset, tmp_path):
    import shutil

    from train.train import ConfigMismatch, train

    shutil.copytree(tiny_run, tmp_path / "run")
    original = json.loads((tmp_path / "run" / "run.json").read_text())
    config = replace(replace(TrainConfig(), **TINY_PRESET), data=tiny_dataset, out=tmp_path / "run", seed=7, resume=True)
    try:
        train(config)
    except ConfigMismatch as error:
        assert "seed: 42 then, 7 now" in str(error)
    else:
        raise AssertionError("a resume with another seed must be refused")
    assert json.loads((tmp_path / "run" / "run.json").read_text()) == original


def test_resume_takes_the_run_s_own_settings_from_its_record(tiny_run, tiny_dataset):
    """`python -m train --resume --out RUN` continues a run started with --preset tiny: the
    tiny settings come from run.json, not from the defaults (which would be refused)."""
    from train.train import config_differences

    config = config_from_args(parse_args(["--resume", "--out", str(tiny_run)]))
    recorded = json.loads((tiny_run / "run.json").read_text())["config"]
    assert config_differences(recorded, config.to_json()) == []
    assert (config.base_filters, config.crop_size, config.tune) == (TINY_PRESET["base_filters"], TINY_PRESET["crop_size"], False)
    assert config.data.resolve() == tiny_dataset.resolve() and config.out == tiny_run and config.resume
    longer = config_from_args(parse_args(["--resume", "--out", str(tiny_run), "--epochs", "3", "--seed", "7"]))
    assert longer.epochs == 3 and config_differences(recorded, longer.to_json()) == ["seed: 42 then, 7 now"]
    # A preset named again only locates the run: the tiny preset's own data folder (the bundled
    # samples) does not replace the one this run recorded.
    again = config_from_args(parse_args(["--resume", "--preset", "tiny", "--out", str(tiny_run)]))
    assert again == config and config_differences(recorded, again.to_json()) == []


def test_a_run_record_that_is_not_one_is_refused_clearly(tmp_path, capsys):
    from train.__main__ import main

    (tmp_path / "run.json").write_text('{"config": [1, 2]}')
    assert main(["--resume", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "could not be read as a run record" in err and "Traceback" not in err


def test_relative_paths_are_recorded_relative_to_the_project(tmp_path, monkeypatch):
    from nuclei_app.config import PROJECT_DIR

    monkeypatch.chdir(tmp_path)
    recorded = replace(TrainConfig(), data=Path("mydata")).to_json()["data"]
    assert (PROJECT_DIR / recorded).resolve() == (tmp_path / "mydata").resolve()


def test_a_new_run_into_a_run_s_folder_and_a_resume_to_fewer_epochs_are_refused(tiny_run, tiny_dataset, tmp_path,
                                                                               capsys):
    """A user test: without --resume, a run's checkpoint, log and run.json were overwritten
    without a word; --resume --epochs 5 on a 25-epoch run re-exported it as a 5-epoch model."""
    import shutil

    from train.__main__ import main

    shutil.copytree(tiny_run, tmp_path / "run")
    state = tmp_path / "run" / "checkpoints" / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "epochs_done": 3}))   # as after 3 epochs
    before = {name: (tmp_path / "run" / name).read_bytes() for name in ("run.json", "log.csv", "checkpoints/state.json")}
    common = ["--preset", "tiny", "--data", str(tiny_dataset), "--out", str(tmp_path / "run")]
    assert main(common) == 2
    assert "holds a run with 3 epochs done: add --resume to continue it" in capsys.readouterr().err
    assert main(common + ["--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "has 3 epochs done: --epochs 2 would stop before them" in err and "Traceback" not in err
    assert {name: (tmp_path / "run" / name).read_bytes() for name in before} == before


def test_a_run_recorded_before_its_data_s_content_resumes_only_on_its_own_folder(tiny_run, tiny_dataset, tmp_path,
                                                                                capsys):
    """Without a record of its data's content, another --data can't be checked: still refused."""
    import shutil

    from train.__main__ import main
    from train.config import portable

    run_folder = shutil.copytree(tiny_run, tmp_path / "run")
    record = json.loads((run_folder / "run.json").read_text())
    del record["data"]
    (run_folder / "run.json").write_text(json.dumps(record))
    other = shutil.copytree(tiny_dataset, tmp_path / "other")
    assert main(["--resume", "--out", str(run_folder), "--epochs", "2", "--data", str(other)]) == 2
    assert f"data: {record['config']['data']!r} then, {portable(other)!r} now" in capsys.readouterr().err
    record["config"]["data"] = portable(tmp_path / "gone")
    (run_folder / "run.json").write_text(json.dumps(record))
    assert main(["--resume", "--out", str(run_folder), "--epochs", "2"]) == 2
    assert "resumes only there" in capsys.readouterr().err


def test_a_run_into_the_folder_of_other_runs_is_refused(tmp_path, capsys):
    """A trial: --out runs made runs/ itself a run, its checkpoints beside runs/default's."""
    from train.__main__ import main

    for name in ("default", "long"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "run.json").write_text("{}")
    assert main(["--preset", "tiny", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'runs'} holds other runs (default, long): give this run a folder of its own" in err
    assert main(["--resume", "--out", str(tmp_path / "runs")]) == 2   # a trial: this said "leave out --resume"
    first = tmp_path / "runs" / "default"
    assert f"holds runs (default, long), not one: give the one to resume, such as --out {first}" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default", "long"]


def test_resume_of_a_folder_without_a_run_is_refused(tmp_path, capsys):
    from train.__main__ import main

    assert main(["--preset", "tiny", "--resume", "--out", str(tmp_path / "typo")]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume in" in err and "typo" in err and "Traceback" not in err
    assert "the folder does not exist" in err   # not "it holds no run.json" (a new-user trial)
    assert not (tmp_path / "typo").exists()


def test_a_resume_with_a_preset_the_run_did_not_start_with_is_refused(tiny_run, tmp_path, capsys):
    """A new-user trial: --resume --preset long on a 7-epoch run trained nothing and said nothing."""
    import shutil

    from train.__main__ import main

    shutil.copytree(tiny_run, tmp_path / "run")
    before = (tmp_path / "run" / "run.json").read_bytes()
    assert main(["--resume", "--out", str(tmp_path / "run"), "--preset", "long"]) == 2
    err = capsys.readouterr().err
    assert "differs from --preset long (epochs: 1 in the run, 72 in the preset" in err
    assert "--epochs 72 to train it longer" in err and "Traceback" not in err
    assert (tmp_path / "run" / "run.json").read_bytes() == before


def test_a_new_run_into_a_model_folder_is_refused(tiny_dataset, tiny_model_dir, tmp_path, capsys):
    """A new-user trial: --out at an exported model folder filled it with checkpoints, a run
    record and a nested model/, and it still passed as a model folder to upload."""
    import shutil

    from train.__main__ import main

    shutil.copytree(tiny_model_dir, tmp_path / "model_copy")
    before = sorted(p.name for p in (tmp_path / "model_copy").iterdir())
    assert main(["--preset", "tiny", "--data", str(tiny_dataset), "--out", str(tmp_path / "model_copy")]) == 2
    assert "is a model folder (it holds nuclei.json)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "model_copy").iterdir()) == before


def test_hub_flags_are_checked_before_training(tiny_dataset, tmp_path, monkeypatch, capsys):
    """An upload that can't happen is told at the start, not after the run: --private alone, a
    smoke-test model, no token (a trial learnt it from a traceback at the end)."""
    import pytest

    from train.__main__ import main

    for flags, expected in ((["--preset", "tiny", "--private"], "only apply to an upload"),
                            (["--preset", "tiny", "--push-to-hub", "o/n"], "smoke-test model, not one to publish"),
                            (["--push-to-hub", "o/n/x"], "give the repository as OWNER/NAME"),
                            (["--push-to-hub", "o/n--"], "not a Hub repository name")):
        with pytest.raises(SystemExit) as exit_:
            main(["--data", str(tiny_dataset), "--out", str(tmp_path / "run")] + flags)
        assert exit_.value.code == 2 and expected in capsys.readouterr().err
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))   # no stored login either
    assert main(["--epochs", "1", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"),
                 "--push-to-hub", "o/n"]) == 2
    assert "needs a Hugging Face token with write access: set HF_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_start_that_fails_on_its_data_leaves_no_run_record(tmp_path, capsys):
    """A wrong --data used to leave run.json behind: a later --resume took it for a run and
    failed on the same wrong folder, and a fixed new run was refused as resuming nothing."""
    from train.__main__ import main

    out = tmp_path / "run"
    assert main(["--preset", "tiny", "--data", str(tmp_path / "no_such_data"), "--out", str(out)]) == 2
    assert "no_such_data" in capsys.readouterr().err and not out.exists()
    assert main(["--resume", "--out", str(out)]) == 2
    assert "nothing to resume in" in capsys.readouterr().err


def test_long_preset_is_longer_and_writes_elsewhere():
    config = config_from_args(parse_args(["--preset", "long"]))
    assert config.epochs > TrainConfig().epochs and config.out != TrainConfig().out


def test_cli_flags_override_the_preset():
    config = config_from_args(parse_args(["--preset", "tiny", "--epochs", "2", "--seed", "3", "--depth", "3"]))
    assert config.epochs == 2 and config.seed == 3 and config.crop_size == TINY_PRESET["crop_size"]
    assert config.depth == 3 != TINY_PRESET["depth"]
    assert config_from_args(parse_args([])) == TrainConfig()


def test_zero_is_a_value_not_an_absent_flag():
    config = config_from_args(parse_args(["--kind-balance", "0", "--holdout-group", "0", "--loader-workers", "3"]))
    assert (config.kind_balance, config.holdout_group, config.loader_workers) == (0.0, 0, 3)


def test_resume_may_change_the_loader_processes_but_not_the_recipe():
    from train.train import config_differences

    original = TrainConfig().to_json()
    assert config_differences(original, replace(TrainConfig(), loader_workers=4, epochs=50).to_json()) == []
    assert config_differences(original, replace(TrainConfig(), kind_balance=1.0).to_json()) == [
        "kind_balance: 0.7 then, 1.0 now"]


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    from train.__main__ import main

    assert main(["--preset", "tiny", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "python -m train.download" in capsys.readouterr().err


def test_a_gap_weighted_run_trains_on_weighted_targets_and_records_the_weight(tiny_dataset, tmp_path):
    from train.train import train

    config = replace(replace(TrainConfig(), **TINY_PRESET), data=tiny_dataset, out=tmp_path / "run", gap_weight=4.0)
    train(config)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["gap_weight"] == 4.0
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(np.isfinite(float(row[key])) for row in rows for key in ("loss", "val_loss"))
    assert config_from_args(parse_args(["--gap-weight", "0"])).gap_weight == 0.0
    assert config_from_args(parse_args(["--gap-weight", "5"])).gap_weight == 5.0


def test_a_centre_marker_run_exports_a_three_output_folder_that_loads_and_segments(tiny_dataset, tmp_path):
    """--markers centre: the network learns each nucleus's centre map as a third output, the
    folder says so, and the pipeline seeds the watershed on it; the default stays two outputs."""
    from nuclei_app.imageio import read_image
    from nuclei_app.model import load_model_folder
    from nuclei_app.pipeline import segment
    from train.train import train

    from .conftest import SAMPLES

    config = replace(replace(TrainConfig(), **TINY_PRESET), data=tiny_dataset, out=tmp_path / "run")
    assert config.markers == "boundary" and config.outputs == ["body", "boundary"]
    config = replace(config, markers="centre")
    assert config.outputs == ["body", "boundary", "centre"]
    train(config)
    model = load_model_folder(tmp_path / "run" / "model")
    assert model.metadata["outputs"] == ["body", "boundary", "centre"] and model.keras_model.output_shape[-1] == 3
    assert "centre" in model.metadata["output_meaning"]
    result = segment(model, read_image(next((SAMPLES / "images").glob("*.png"))))
    assert result.probabilities.shape[-1] == 3 and result.labels.shape == result.probabilities.shape[:2]
    assert config_from_args(parse_args(["--markers", "centre"])).markers == "centre"


def test_a_run_from_before_the_centre_map_resumes_with_boundary_markers(tmp_path):
    """A run.json written before --markers existed trained two outputs: it resumes so."""
    from train.config import recorded_config

    recorded = {key: value for key, value in TrainConfig().to_json().items() if key != "markers"}
    (tmp_path / "run.json").write_text(json.dumps({"config": recorded}))
    assert recorded_config(tmp_path).markers == "boundary"
    assert recorded_config(tmp_path).outputs == ["body", "boundary"]


def test_markers_must_be_boundary_or_centre(capsys):
    import pytest

    with pytest.raises(ValueError, match="markers must be one of boundary, centre, not 'distance'"):
        TrainConfig(markers="distance").outputs
    with pytest.raises(SystemExit):
        parse_args(["--markers", "distance"])
    assert "invalid choice" in capsys.readouterr().err


def test_a_setting_added_since_a_run_started_counts_as_its_default_then():
    from train.train import config_differences

    now = TrainConfig().to_json()
    original = {key: value for key, value in now.items() if key not in ("gap_weight", "kind_balance")}
    assert config_differences(original, now) == []
    assert config_differences(original, {**now, "gap_weight": 2.0}) == ["gap_weight: 0.0 then, 2.0 now"]


def test_a_run_from_before_synthetic_stain_resumes_only_without_it(capsys):
    import pytest

    from train.train import config_differences

    now = TrainConfig().to_json()
    original = {key: value for key, value in now.items() if key != "synthetic_stain"}
    assert config_differences(original, now) == [f"synthetic_stain: 0.0 then, {now['synthetic_stain']!r} now"]
    assert config_differences(original, {**now, "synthetic_stain": 0.0}) == []
    assert config_from_args(parse_args(["--synthetic-stain", "0"])).synthetic_stain == 0.0
    with pytest.raises(SystemExit):
        parse_args(["--synthetic-stain", "1.5"])
    assert "between 0 and 1" in capsys.readouterr().err


def test_a_run_from_before_tissue_rendering_resumes_and_the_share_is_a_probability(capsys):
    import pytest

    from train.export import synthetic_stain_text
    from train.train import config_differences

    now = TrainConfig().to_json()
    original = {key: value for key, value in now.items() if key != "synthetic_tissue"}
    assert config_differences(original, now) == []          # the default draws no tissue: as before
    assert config_differences(original, {**now, "synthetic_tissue": 0.5}) == ["synthetic_tissue: 0.0 then, 0.5 now"]
    config = config_from_args(parse_args(["--synthetic-tissue", "0.5"]))
    assert config.synthetic_tissue == 0.5
    assert "50% of those drawn as tissue" in synthetic_stain_text({"config": config.to_json()})
    assert "tissue" not in synthetic_stain_text({"config": TrainConfig().to_json()})
    with pytest.raises(SystemExit):
        parse_args(["--synthetic-tissue", "2"])
    assert "between 0 and 1" in capsys.readouterr().err


def test_gap_weight_must_not_be_negative(capsys):
    import pytest

    with pytest.raises(SystemExit):
        parse_args(["--gap-weight", "-1"])
    assert "must be 0 or more" in capsys.readouterr().err


def test_a_bfloat16_run_trains_in_mixed_precision_and_exports_float32(tiny_dataset, tmp_path):
    import keras

    from train.train import config_differences, train

    config = replace(replace(TrainConfig(), **TINY_PRESET), data=tiny_dataset, out=tmp_path / "run", precision="bfloat16")
    train(config)
    checkpoint = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    assert checkpoint.get_layer("down0_conv1").compute_dtype == "bfloat16"      # trained in bfloat16
    assert checkpoint.get_layer("probabilities").compute_dtype == "float32"
    model = load_model_folder(tmp_path / "run" / "model")
    assert model.metadata["training"]["precision"] == "bfloat16"
    exported = model.keras_model
    assert {layer.compute_dtype for layer in exported.layers} == {"float32"}
    for trained, shipped in zip(checkpoint.get_weights(), exported.get_weights()):
        np.testing.assert_array_equal(trained, shipped)
    assert "in mixed bfloat16" in (tmp_path / "run" / "model" / "README.md").read_text()
    # Runs from before the setting trained in float32, and only resume so.
    now = TrainConfig().to_json()
    original = {key: value for key, value in now.items() if key != "precision"}
    assert config_differences(original, {**now, "precision": "bfloat16"}) == ["precision: 'float32' then, 'bfloat16' now"]
    assert config_from_args(parse_args(["--precision", "auto"])).precision == "auto"


def test_a_weight_averaged_run_exports_the_average_not_the_last_step(tiny_dataset, tmp_path):
    import keras

    from train.train import train

    config = replace(replace(TrainConfig(), **TINY_PRESET), data=tiny_dataset, out=tmp_path / "run",
                     weight_average=0.5, tune=False)
    train(config)
    exported = load_model_folder(tmp_path / "run" / "model").keras_model
    checkpoint = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    averages = [np.asarray(a) for a in checkpoint.optimizer._model_variables_moving_average]
    last_step = [np.asarray(v) for v in checkpoint.trainable_variables]
    shipped = [np.asarray(v) for v in exported.trainable_variables]
    assert all(np.allclose(s, a) for s, a in zip(shipped, averages))
    assert not all(np.allclose(s, w) for s, w in zip(shipped, last_step))
    assert "moving average (momentum 0.5)" in (tmp_path / "run" / "model" / "README.md").read_text()


def test_weight_average_is_a_momentum(capsys):
    assert config_from_args(parse_args(["--weight-average", "0.995"])).weight_average == 0.995
    try:
        parse_args(["--weight-average", "1"])
    except SystemExit:
        assert "not a momentum" in capsys.readouterr().err
    else:
        raise AssertionError("a momentum of 1 never moves and must be refused")


def test_training_asks_for_onednn_unless_told_otherwise():
    import os
    import subprocess
    import sys

    def setting_after_import(**env):
        clean = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
        done = subprocess.run([sys.executable, "-c", "import os, train; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"],
                              env={**clean, **env}, capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip()

    assert setting_after_import() == "1"
    assert setting_after_import(TF_ENABLE_ONEDNN_OPTS="0") == "0"


def test_an_interrupted_run_says_how_to_resume_it(monkeypatch, tmp_path, capsys):
    """Ctrl-C, or SIGTERM from a scheduler (handled alike), ends with the resume command."""
    import train.train
    from train.__main__ import main

    def stopped(config):
        raise KeyboardInterrupt

    def stopped_in_the_first_epoch(config):
        (config.out / "checkpoints").mkdir(parents=True)
        (config.out / "run.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(train.train, "train", stopped)
    assert main(["--preset", "tiny", "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err   # stopped while reading the data: nothing to resume
    assert "interrupted before the run started: nothing was written; run the same command again" in err
    monkeypatch.setattr(train.train, "train", stopped_in_the_first_epoch)
    assert main(["--preset", "tiny", "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert f"continue it with python -m train --resume --out {tmp_path / 'run'}" in err and "Traceback" not in err
    assert "had finished no epoch yet" in err


def test_a_resume_to_more_epochs_is_the_target_of_the_next_plain_resume(tiny_run, tmp_path, capsys):
    """A user test: --resume --epochs 40, interrupted at 17, then the printed `--resume --out
    RUN` was refused as "--epochs 1 would stop before them" (run.json kept the first target)."""
    import shutil

    from train.__main__ import main

    shutil.copytree(tiny_run, tmp_path / "run")
    assert main(["--resume", "--out", str(tmp_path / "run"), "--epochs", "2"]) == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["epochs"] == 2
    assert config_from_args(parse_args(["--resume", "--out", str(tmp_path / "run")])).epochs == 2
    assert main(["--resume", "--out", str(tmp_path / "run"), "--seed", "1"]) == 2
    assert "seed: 42 then, 1 now" in capsys.readouterr().err   # the mismatch, not an epochs complaint


def test_a_new_run_never_overwrites_a_model_folder(tiny_dataset, tmp_path, capsys):
    """A user test: --out assets replaced the bundled model (no checkpoints there to refuse on)."""
    from train.__main__ import main

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "nuclei.json").write_text("{}")
    assert main(["--preset", "tiny", "--data", str(tiny_dataset), "--out", str(tmp_path)]) == 2
    assert "holds a model folder" in capsys.readouterr().err
    assert (tmp_path / "model" / "nuclei.json").read_text() == "{}"


def test_log_rows_of_epochs_not_in_the_checkpoint_are_dropped(tmp_path):
    from train.train import keep_logged_epochs

    log = tmp_path / "log.csv"
    log.write_bytes(b"epoch,loss\r\n0,1.0\r\n1,0.9\r\n2,0.8\r\n\r\n")
    keep_logged_epochs(log, 2)
    assert log.read_bytes() == b"epoch,loss\r\n0,1.0\r\n1,0.9\r\n\r\n"


def test_bad_sizes_are_argument_errors_not_keras_tracebacks(tmp_path, capsys):
    import pytest

    from train.__main__ import main

    for flags in (["--epochs", "0"], ["--batch-size", "0"], ["--steps-per-epoch", "-3"], ["--epochs", "2.5"]):
        with pytest.raises(SystemExit) as stopped:
            main(["--preset", "tiny", "--out", str(tmp_path / "run"), *flags])
        assert stopped.value.code == 2, flags
    capsys.readouterr()
    assert main(["--preset", "tiny", "--out", str(tmp_path / "run"), "--crop-size", "50"]) == 2
    assert "--crop-size 50 must be a multiple of" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_lab_s_few_images_of_one_source_are_held_out_by_image(tmp_path):
    """A trial: 6 annotated images of one experiment form one source group, and the run validated
    on an image it trained on (and tuned its settings on it) though the README promised a split."""
    from tests.conftest import write_competition_dataset
    from train.train import train

    data = write_competition_dataset(tmp_path / "data", count=6)
    config = replace(replace(TrainConfig(), **TINY_PRESET), data=data, out=tmp_path / "run", max_images=None)
    training = load_model_folder(train(config)).metadata["training"]
    assert training["images"] == {"train": 5, "validation": 1, "validation_is_training": False,
                                  "validation_by_image": True}
    assert "held out **by image**" in (tmp_path / "run" / "model" / "README.md").read_text()


def test_settings_are_not_tuned_on_an_image_the_network_trained_on(tiny_dataset, tmp_path):
    from train.train import train

    config = replace(replace(TrainConfig(), **TINY_PRESET), data=tiny_dataset, out=tmp_path / "run", tune=True)
    model = load_model_folder(train(config))
    assert model.metadata["training"]["images"]["validation_is_training"]
    assert model.metadata["metrics"]["postprocess_scoring"] == "untuned"
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "model-index" not in card.split("---")[1]   # no validation result to publish
    assert "not tuned (the validation image is a training image)" in card   # not "--preset tiny"
