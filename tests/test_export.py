import json

from nuclei_app.model import verify_folder


def test_model_card_has_hub_front_matter_and_real_metrics(tiny_model_dir):
    card = (tiny_model_dir / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    for key in ("license:", "library_name: keras", "tags:"):
        assert key in front
    # The tiny run validated on an image it trained on: no validation result to publish.
    assert "model-index:" not in front
    metadata = json.loads((tiny_model_dir / "nuclei.json").read_text())
    # A run on DSB2018 names it as its dataset; this one (its own tiny images) must not.
    from train.export import card_front_matter

    images = {**metadata["training"]["images"], "validation_is_training": False}
    dsb = {**metadata, "training": {**metadata["training"], "data": "../shared/data/dsb2018/stage1_train",
                                    "images": images}}
    assert "datasets:\n- dsb2018" in card_front_matter(dsb) and "datasets:" not in front
    # A lab's folder by its name (the trainer's path means nothing on the Hub), held out as it was.
    own = {**metadata, "training": {**metadata["training"], "data": "../../home/lab/our_nuclei",
                                    "images": {**images, "validation": 2, "validation_by_image": True}}}
    assert "name: our_nuclei, 2 images held out by image" in card_front_matter(own)
    mean_ap = metadata["metrics"]["validation"]["all"]["mean_ap"]
    assert "model-index:" in card_front_matter(dsb) and f"value: {round(mean_ap, 4)}" in card_front_matter(dsb)
    assert "## Validation metrics" in body and "## Limitations" in body
    share = metadata["training"]["config"]["synthetic_stain"]
    assert share > 0 and f"{share:.0%} of the fluorescence crops rendered as stained" in body


def test_model_card_of_a_run_from_before_synthetic_stain_does_not_claim_it():
    from train.export import synthetic_stain_text

    assert synthetic_stain_text({"config": {"epochs": 26}}) == ""
    assert "10% of the fluorescence crops" in synthetic_stain_text({"config": {"synthetic_stain": 0.1}})


def test_model_card_names_the_maps_the_network_predicts():
    from train.export import maps_text

    assert "three maps" in maps_text(["body", "boundary", "centre"]) and "**centre**" in maps_text(
        ["body", "boundary", "centre"])
    assert "two maps" in maps_text(["body", "boundary"]) and "centre" not in maps_text(["body", "boundary"])


def test_model_card_s_loss_counts_the_outputs(tiny_model_dir):
    from train.export import each_output, model_card

    assert each_output(["body", "boundary"]) == "both outputs"
    assert each_output(["body", "boundary", "centre"]) == "all 3 outputs"
    metadata = json.loads((tiny_model_dir / "nuclei.json").read_text())
    three = model_card({**metadata, "outputs": ["body", "boundary", "centre"]})
    assert "BCE + Dice on\nall 3 outputs" in three and "three maps" in three and "both outputs" not in three


def test_exported_folder_satisfies_the_contract(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "metadata.json", "model.weights.h5", "nuclei.json", "README.md"} <= names
    metadata = verify_folder(tiny_model_dir)
    assert metadata["outputs"] == ["body", "boundary"]   # the default --markers boundary
    assert set(metadata["output_meaning"]) == set(metadata["outputs"])
    assert {"command", "code_version", "split_seed", "crop_size"} <= set(metadata["training"])


def test_push_then_fetch_segments_like_the_local_folder(hub, repo_id, tiny_model_dir, tiny_model, monkeypatch):
    import numpy as np

    from nuclei_app.imageio import read_image
    from nuclei_app.pipeline import segment
    from nuclei_app.sources import resolve_model
    from train.export import push_to_hub

    from .conftest import SAMPLES

    monkeypatch.setenv("HF_TOKEN", hub.token)
    commit = push_to_hub(tiny_model_dir, repo_id, private=True, message="test upload")
    assert len(commit) == 40 and hub.repos[repo_id].private
    assert set(hub.repos[repo_id].commits[commit]) >= {"config.json", "model.weights.h5", "nuclei.json", "README.md"}
    fetched = resolve_model(f"hf://{repo_id}@{commit}", fallback=False)
    assert fetched.revision == commit
    image = read_image(SAMPLES / "images" / "fluorescence_sparse.png")
    np.testing.assert_array_equal(segment(fetched, image).labels, segment(tiny_model, image).labels)


def test_export_command_reports_bad_folder(tmp_path, capsys):
    from train.export import main

    assert main(["--model", str(tmp_path), "--push-to-hub", "o/n"]) == 2
    assert "incomplete" in capsys.readouterr().err


def test_the_card_says_what_the_model_was_trained_on():
    from train.export import training_data_text

    smoke = training_data_text({"data": "assets/samples", "split_seed": 42})
    real = training_data_text({"data": "../shared/data/dsb2018/stage1_train", "split_seed": 42})
    own = training_data_text({"data": "../lab/nuclei", "split_seed": 42, "validation_fraction": 0.2,
                              "images": {"train": 40, "validation": 9, "validation_is_training": False}})
    assert "smoke-test model" in smoke and "DSB2018" not in smoke
    assert "DSB2018" in real and "stage1_train" in real and "not DSB2018" not in real
    assert "`../lab/nuclei` (not DSB2018's training set): 40 training and 9 validation images" in own
    assert "trained on" not in own


def test_the_card_s_unseen_images_limitation_names_the_model_s_own_data():
    """A fine-tuned model's card named DSB2018's held-out test set, which says nothing of a lab's images."""
    from train.export import unseen_images_text

    assert "held-out DSB2018 test set" in unseen_images_text({"data": "../shared/data/dsb2018/stage1_train"})
    own = unseen_images_text({"data": "../lab/nuclei"})
    assert "DSB2018" not in own and own.startswith("- Images unlike those in `../lab/nuclei` (another stain")


def test_an_upload_that_can_t_reach_the_hub_is_one_clear_message(tiny_model_dir, monkeypatch, capsys):
    """A new-user trial without network: huggingface_hub's connection error came out as a
    75-line traceback. Here HF_ENDPOINT points at a port nothing serves (no stand-in started)."""
    from train.export import main

    monkeypatch.setenv("HF_TOKEN", "hf_not_checked")
    assert main(["--model", str(tiny_model_dir), "--push-to-hub", "o/n", "--private"]) == 1
    err = capsys.readouterr().err
    assert "upload to o/n failed: the Hugging Face Hub could not be reached" in err and "Traceback" not in err
    # The command to try again asks for what this one did: a private repo stays private.
    assert f"publish it later with: python -m train.export --push-to-hub o/n --model {tiny_model_dir} --private" in err


def test_the_card_s_limitations_follow_the_kinds_validated():
    """A trial: "Few brightfield (0 validation) ... lower than fluorescence" on a model scored on none."""
    from train.export import light_images_text

    assert light_images_text({"fluorescence": 3}) == ("- No brightfield or H&E tissue image in the validation split: "
                                                      "these kinds are unscored.")
    assert light_images_text({"brightfield": 5, "tissue": 21}).startswith("- Few brightfield (5 validation) and H&E "
                                                                          "tissue (21 validation) images")
    only_tissue = light_images_text({"tissue": 4})
    assert only_tissue.startswith("- Few H&E tissue (4 validation) images") and "brightfield (0" not in only_tissue
    assert "No brightfield image in the validation split: this kind is unscored." in only_tissue
    assert "lower than" not in only_tissue   # nothing to compare with
    scores = {"fluorescence": {"mean_ap": 0.65}, "tissue": {"mean_ap": 0.40}}
    assert "noisy, and lower than fluorescence." in light_images_text({"tissue": 4, "fluorescence": 9}, scores)
    assert "noisy." in light_images_text({"tissue": 4}, {"tissue": {"mean_ap": 0.40}})


def test_the_card_says_why_settings_were_not_tuned():
    from train.export import scoring_text

    untuned = {"postprocess_scoring": "untuned"}
    reused = {"images": {"train": 4, "validation": 1, "validation_is_training": True}}
    split = {"images": {"train": 4, "validation": 1, "validation_is_training": False}}
    assert "(the validation image is a training image)" in scoring_text(untuned, reused)
    assert "as `--preset tiny` does" in scoring_text(untuned, split)
    assert "--preset tiny" not in scoring_text(untuned, reused)
