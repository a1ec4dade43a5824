import json

from nuclei_app.model import verify_folder


def test_model_card_has_hub_front_matter_and_real_metrics(tiny_model_dir):
    card = (tiny_model_dir / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    for key in ("license:", "library_name: keras", "tags:", "datasets:", "model-index:"):
        assert key in front
    metadata = json.loads((tiny_model_dir / "nuclei.json").read_text())
    mean_ap = metadata["metrics"]["validation"]["all"]["mean_ap"]
    assert f"value: {round(mean_ap, 4)}" in front
    assert "## Validation metrics" in body and "## Limitations" in body


def test_exported_folder_satisfies_the_contract(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "metadata.json", "model.weights.h5", "nuclei.json", "README.md"} <= names
    metadata = verify_folder(tiny_model_dir)
    assert metadata["outputs"] == ["body", "boundary"]
    assert {"command", "code_version", "split_seed", "crop_size"} <= set(metadata["training"])
