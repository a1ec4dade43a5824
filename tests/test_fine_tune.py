import json
import shutil

import numpy as np
import pytest

from nuclei_app.model import load_model_folder, model_digest
from train.__main__ import config_from_args, main, parse_args
from train.config import portable
from train.fine_tune import FineTuneError, find_base, with_base

from .test_sources import model_files


def fine_tuning(*flags: str):
    return config_from_args(parse_args(["--fine-tune", *flags]))


def tiny_fine_tuning_run(base, data, out, *flags: str):
    from train.train import train

    return load_model_folder(train(fine_tuning(str(base), "--preset", "tiny", "--data", str(data), "--out", str(out),
                                               *flags)))


def test_a_fine_tuning_run_starts_from_the_base_s_weights_and_says_so(tiny_model_dir, tiny_dataset, tmp_path):
    """With a learning rate of 0 no trained weight moves (batch norm's running statistics still
    do): the export holds the base's weights, not random ones."""
    tuned = tiny_fine_tuning_run(tiny_model_dir, tiny_dataset, tmp_path / "run", "--learning-rate", "0")
    base = load_model_folder(tiny_model_dir)
    pairs = zip(tuned.keras_model.trainable_weights, base.keras_model.trainable_weights, strict=True)
    for ours, theirs in pairs:
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    record = tuned.metadata["training"]["fine_tuned_from"]
    # Relative to the project, as the data folder is: the record means the same in any clone.
    assert record["source"] == portable(tiny_model_dir) and record["digest"] == model_digest(tiny_model_dir)
    # Both networks on the run's one validation image, with the starting model's settings.
    before, after = record["validation"]["before"]["all"], record["validation"]["after"]["all"]
    assert before["images"] == after["images"] == 1 and 0 <= before["mean_ap"] <= 1
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "## Fine-tuning" in card and f"digest {record['digest']}" in card
    assert f"| all (1) | {before['mean_ap']:.3f} | {after['mean_ap']:.3f} |" in card
    assert json.loads((tmp_path / "run" / "run.json").read_text())["fine_tuned_from"] == {
        key: record[key] for key in ("source", "revision", "digest", "postprocess")}
    # Untuned (--preset tiny), it ships its base's settings, not the defaults.
    assert tuned.metadata["postprocess"] == base.metadata["postprocess"] == record["postprocess"]


def test_a_resume_from_its_checkpoint_needs_no_base_and_the_card_says_why_it_is_unscored(
        tiny_model_dir, tiny_dataset, tmp_path, monkeypatch, capsys):
    base = shutil.copytree(tiny_model_dir, tmp_path / "base")
    tiny_fine_tuning_run(base, tiny_dataset, tmp_path / "run")
    shutil.rmtree(base)   # moved or deleted since: the checkpoint holds the run's weights
    monkeypatch.chdir(tmp_path)   # another working directory
    assert main(["--resume", "--out", str(tmp_path / "run"), "--epochs", "2", "--preset", "tiny"]) == 0
    tuned = load_model_folder(tmp_path / "run" / "model")
    assert tuned.metadata["training"]["epochs"] == 2
    record = tuned.metadata["training"]["fine_tuned_from"]
    assert "validation" not in record and "does not exist" in record["not_scored"]
    assert f"not scored on this run's validation images: {record['not_scored']}" in (
        tmp_path / "run" / "model" / "README.md").read_text()


def test_a_resume_before_the_first_checkpoint_refuses_a_base_changed_since(tiny_model_dir, tmp_path, capsys):
    base = shutil.copytree(tiny_model_dir, tmp_path / "base")
    run = tmp_path / "run"
    run.mkdir()
    config = fine_tuning(str(base), "--out", str(run)).to_json()
    (run / "run.json").write_text(json.dumps({"command": "python -m train", "config": config, "fine_tuned_from": {
        "source": portable(base), "revision": None, "digest": "0" * 12}}))
    assert main(["--resume", "--out", str(run)]) == 2
    assert f"{base} has changed since the run started from it" in capsys.readouterr().err
    assert not (run / "checkpoints").exists()


def test_another_base_on_resume_is_refused_and_the_same_one_is_not(tiny_model_dir, tiny_run, tmp_path, capsys):
    shutil.copytree(tiny_run, tmp_path / "run")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    run["config"]["fine_tune"] = portable(tiny_model_dir)
    (tmp_path / "run" / "run.json").write_text(json.dumps(run))
    resumed = config_from_args(parse_args(["--resume", "--out", str(tmp_path / "run")]))
    assert resumed.fine_tune.resolve() == tiny_model_dir.resolve()
    same = config_from_args(parse_args(["--resume", "--out", str(tmp_path / "run"), "--fine-tune", str(tiny_model_dir)]))
    from train.train import config_differences

    assert config_differences(run["config"], same.to_json()) == []
    assert main(["--resume", "--out", str(tmp_path / "run"), "--fine-tune", "assets/model"]) == 2
    assert "fine_tune:" in capsys.readouterr().err


def test_the_base_s_network_and_scale_are_kept_and_the_defaults_are_gentler(tiny_model_dir, tmp_path):
    base = shutil.copytree(tiny_model_dir, tmp_path / "base")
    metadata = json.loads((base / "nuclei.json").read_text())
    metadata["scale"]["diameter"], metadata["outputs"] = 24.0, ["body", "boundary", "centre"]
    (base / "nuclei.json").write_text(json.dumps(metadata))
    config = fine_tuning(str(base))
    assert (config.base_filters, config.depth) == (4, 2) == (metadata["training"]["base_filters"],
                                                              metadata["training"]["depth"])
    assert config.diameter == 24.0 and config.markers == "centre" and config.fine_tune == base
    assert (config.learning_rate, config.epochs) == (1e-4, 8)
    assert fine_tuning(str(base), "--epochs", "3", "--learning-rate", "0.01").epochs == 3
    assert fine_tuning(str(base), "--preset", "tiny").epochs == 1   # a smoke run stays one


def test_a_flag_that_would_change_the_base_s_network_is_refused(tiny_model_dir, tmp_path, capsys):
    assert main(["--fine-tune", str(tiny_model_dir), "--depth", "3", "--diameter", "16",
                 "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "--depth 3 would need another network" in error and "depth 2" in error
    assert "--diameter" not in error.split(";")[1]   # 16 is the base's own: no conflict
    assert not (tmp_path / "run").exists()


def test_arguments_that_can_t_fine_tune_are_refused_before_anything_runs(tiny_model_dir, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--fine-tune", ""])   # an unset variable: not a run from random weights
    assert "empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--fine-tune", str(tiny_model_dir), "--holdout-group", "-1"])
    assert "without --fine-tune" in capsys.readouterr().err


@pytest.mark.parametrize("training", [None, {"base_filters": "16", "depth": 4}, {"depth": 4},
                                      {"base_filters": 16, "depth": 0}])
def test_models_that_can_t_be_rebuilt_are_refused_clearly(tiny_model_dir, tmp_path, training):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "foreign")
    metadata = json.loads((folder / "nuclei.json").read_text())
    metadata["training"] = training
    (folder / "nuclei.json").write_text(json.dumps(metadata))
    with pytest.raises(FineTuneError, match="does not record a usable"):
        with_base(fine_tuning(str(tiny_model_dir)), find_base(folder), {})


def test_a_missing_base_is_one_line(tmp_path, capsys):
    assert main(["--fine-tune", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err


def test_a_hub_base_is_pinned_to_its_commit_and_named_on_the_card(hub, repo_id, tiny_model_dir, tiny_dataset,
                                                                   tmp_path):
    sha = hub.commit(repo_id, model_files(tiny_model_dir))
    tuned = tiny_fine_tuning_run(f"hf://{repo_id}", tiny_dataset, tmp_path / "run")
    record = tuned.metadata["training"]["fine_tuned_from"]
    assert record["revision"] == sha and record["source"] == f"hf://{repo_id}" and "validation" in record
    assert tuned.metadata["training"]["config"]["fine_tune"] == f"hf://{repo_id}@{sha}"
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"base_model: {repo_id}" in card.split("---")[1] and f"commit {sha}" in card


def test_the_export_tunes_from_the_base_s_settings():
    from nuclei_app.config import PostprocessSettings
    from train.fine_tune import base_settings

    shipped = {"threshold": 0.6, "marker_threshold": 0.9, "min_size": 32}
    assert base_settings({"fine_tuned_from": {"postprocess": shipped}}) == PostprocessSettings(**shipped)
    assert base_settings({}) is None and base_settings({"fine_tuned_from": {"postprocess": None}}) is None
