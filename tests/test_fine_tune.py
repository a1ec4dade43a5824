import json
import shutil

import numpy as np
import pytest

from nuclei_app.model import load_model_folder, model_digest
from train.__main__ import config_from_args, main, parse_args
from train.fine_tune import FineTuneError, base_of_run, find_base, with_base

from .test_sources import model_files


def fine_tuning(*flags: str):
    return config_from_args(parse_args(["--fine-tune", *flags]))


def test_a_fine_tuning_run_starts_from_the_base_s_weights_and_says_so(tiny_model_dir, tiny_dataset, tmp_path):
    """With a learning rate of 0 no trained weight moves (batch norm's running statistics still
    do): the export holds the base's weights, not random ones."""
    from train.train import train

    config = fine_tuning(str(tiny_model_dir), "--preset", "tiny", "--data", str(tiny_dataset),
                         "--out", str(tmp_path / "run"), "--learning-rate", "0")
    tuned = load_model_folder(train(config))
    base = load_model_folder(tiny_model_dir)
    pairs = zip(tuned.keras_model.trainable_weights, base.keras_model.trainable_weights, strict=True)
    for ours, theirs in pairs:
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    record = tuned.metadata["training"]["fine_tuned_from"]
    assert record["source"] == str(tiny_model_dir) and record["version"] == model_digest(tiny_model_dir)
    # Both networks on the run's one validation image, with the starting model's settings.
    before, after = record["validation"]["before"]["all"], record["validation"]["after"]["all"]
    assert before["images"] == after["images"] == 1 and 0 <= before["mean_ap"] <= 1
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "## Fine-tuning" in card and f"version {record['version']}" in card
    assert f"| all (1) | {before['mean_ap']:.3f} | {after['mean_ap']:.3f} |" in card
    assert json.loads((tmp_path / "run" / "run.json").read_text())["fine_tuned_from"]["version"] == record["version"]


def test_a_resume_keeps_its_base_and_refuses_another(tiny_model_dir, tiny_run, tmp_path, capsys):
    shutil.copytree(tiny_run, tmp_path / "run")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    run["config"]["fine_tune"] = str(tiny_model_dir)
    (tmp_path / "run" / "run.json").write_text(json.dumps(run))
    assert config_from_args(parse_args(["--resume", "--out", str(tmp_path / "run")])).fine_tune == str(tiny_model_dir)
    assert main(["--resume", "--out", str(tmp_path / "run"), "--fine-tune", "assets/model"]) == 2
    assert "fine_tune:" in capsys.readouterr().err


def test_the_base_s_network_and_scale_are_kept_and_the_defaults_are_gentler(tiny_model_dir):
    config = fine_tuning(str(tiny_model_dir))
    base = load_model_folder(tiny_model_dir)
    assert (config.base_filters, config.depth) == (4, 2) == (base.metadata["training"]["base_filters"],
                                                              base.metadata["training"]["depth"])
    assert config.diameter == base.diameter and config.markers == "boundary"
    assert (config.learning_rate, config.epochs) == (1e-4, 8)
    assert fine_tuning(str(tiny_model_dir), "--epochs", "3", "--learning-rate", "0.01").epochs == 3
    assert fine_tuning(str(tiny_model_dir), "--preset", "tiny").epochs == 1   # a smoke run stays one


def test_a_flag_that_would_change_the_base_s_network_is_refused(tiny_model_dir, tmp_path, capsys):
    assert main(["--fine-tune", str(tiny_model_dir), "--depth", "3", "--diameter", "16",
                 "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "--depth 3 would need another network" in error and "depth 2" in error
    assert "--diameter" not in error.split(";")[1]   # 16 is the base's own: no conflict
    assert not (tmp_path / "run").exists()


def test_models_that_can_t_be_rebuilt_or_found_are_refused_clearly(tiny_model_dir, tmp_path, capsys):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "foreign")
    metadata = json.loads((folder / "nuclei.json").read_text())
    del metadata["training"]["base_filters"]
    (folder / "nuclei.json").write_text(json.dumps(metadata))
    with pytest.raises(FineTuneError, match="does not record its base_filters"):
        with_base(fine_tuning(str(tiny_model_dir)), find_base(str(folder)), {})
    assert main(["--fine-tune", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err


def test_a_base_changed_since_the_run_started_is_not_scored_as_its_start(tiny_model_dir, tmp_path):
    record = {"source": str(tiny_model_dir), "revision": None, "version": model_digest(tiny_model_dir)}
    assert base_of_run({"fine_tuned_from": record}).folder == tiny_model_dir
    assert base_of_run({"fine_tuned_from": {**record, "version": "0" * 12}}) is None
    assert base_of_run({}) is None


def test_a_hub_base_is_pinned_to_its_commit_and_named_on_the_card(hub, repo_id, tiny_model_dir, tiny_dataset,
                                                                   tmp_path):
    from train.train import train

    sha = hub.commit(repo_id, model_files(tiny_model_dir))
    config = fine_tuning(f"hf://{repo_id}", "--preset", "tiny", "--data", str(tiny_dataset),
                         "--out", str(tmp_path / "run"))
    tuned = load_model_folder(train(config))
    record = tuned.metadata["training"]["fine_tuned_from"]
    assert record["revision"] == sha and record["source"] == f"hf://{repo_id}"
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"base_model: {repo_id}" in card.split("---")[1] and f"commit {sha}" in card
