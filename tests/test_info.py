import json

from nuclei_app.info import model_record, model_summary

from .test_main import run_cli


def test_summary_is_readable_and_names_the_code_version(bundled_model):
    text = model_summary(bundled_model)
    code = bundled_model.metadata["training"]["code_version"]
    assert code in text and "mean AP" in text and "16 px diameter" in text
    validation = bundled_model.validation_metrics["validation"]["all"]["mean_ap"]
    assert f"{validation:.3f}" in text and str(validation) not in text  # three decimals, not sixteen


def test_summary_of_a_model_without_metrics(tiny_model):
    assert "Validation" in model_summary(tiny_model)
    assert model_record(tiny_model)["folder"] == str(tiny_model.folder)


def test_summary_names_the_digest_that_summary_csv_records(tiny_model):
    """A user test: summary.csv's settings name the model by digest, which nothing printed."""
    digest = tiny_model.digest()
    assert any(line.split() == ["Digest", digest] for line in model_summary(tiny_model).splitlines())
    assert model_record(tiny_model)["digest"] == digest


def test_cli_prints_the_summary_or_json():
    plain = run_cli("info")
    assert plain.returncode == 0 and plain.stdout.startswith("Model") and "{" not in plain.stdout
    machine = run_cli("info", "--json")
    record = json.loads(machine.stdout)
    assert record["code_version"] and record["metrics"]["validation"]["all"]["mean_ap"] > 0


def test_json_names_a_fallback_to_the_bundled_model(hub, repo_id):
    """A script reading info --json saw the bundled model's record with nothing saying the
    source it asked for (a Hub repository that is gone) was not the one used."""
    record = json.loads(run_cli("info", "--json", "--model", f"hf://{repo_id}").stdout)
    assert record["fallback_from"] == f"hf://{repo_id}" and "could not be used" in record["notice"]
    assert json.loads(run_cli("info", "--json").stdout)["fallback_from"] is None


def test_a_fine_tuned_model_names_what_it_started_from(tiny_model):
    import copy
    from dataclasses import replace

    metadata = copy.deepcopy(tiny_model.metadata)
    metadata["training"]["fine_tuned_from"] = {"source": "hf://lab/nuclei", "revision": "a" * 40, "digest": "0ba7a98d1245"}
    tuned = replace(tiny_model, metadata=metadata)
    line = next(line for line in model_summary(tuned).splitlines() if line.startswith("Fine-tuned from"))
    assert line.split(None, 2)[2] == f"hf://lab/nuclei (digest 0ba7a98d1245, commit {'a' * 40})"
    assert model_record(tuned)["fine_tuned_from"]["source"] == "hf://lab/nuclei"
    assert not any(line.startswith("Fine-tuned") for line in model_summary(tiny_model).splitlines())


def test_a_model_held_out_by_image_and_one_scored_on_fluorescence_only_say_so(tiny_model, bundled_model):
    """A trial: a lab's model held out by image read as validated on other sources, and a
    fluorescence-only validation's shift line named re-stained conditions it did not have."""
    import copy
    from dataclasses import replace

    metadata = copy.deepcopy(tiny_model.metadata)
    metadata["training"]["images"] = {"train": 5, "validation": 1, "validation_is_training": False,
                                      "validation_by_image": True}
    metadata["metrics"]["shift"] = {name: metadata["metrics"]["shift"][name] for name in ("x0.5", "x2", "x3")}
    text = model_summary(replace(tiny_model, metadata=metadata))
    assert "(held out by image from one source: validation images may look much like training ones" in text
    assert "(scored on an image it trained on (too few images" in model_summary(tiny_model)
    assert "[mean AP: rescaled x0.5/x2/x3]" in text
    bundled = model_summary(bundled_model)
    assert "held out by image" not in bundled and "[mean AP: rescaled x0.5/x2/x3, re-stained]" in bundled
