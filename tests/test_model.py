import json
import shutil

import pytest

from nuclei_app.model import ModelLoadError, load_model_folder, verify_folder


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


def test_loads_with_settings_from_nuclei_json(model_copy):
    model = load_model_folder(model_copy)
    assert model.size_multiple == 4
    assert model.normalisation.invert_light_background is True
    assert 0 < model.postprocess_settings.threshold < 1


def test_missing_nuclei_json(model_copy):
    (model_copy / "nuclei.json").unlink()
    with pytest.raises(ModelLoadError, match="missing nuclei.json"):
        load_model_folder(model_copy)


def test_invalid_nuclei_json(model_copy):
    (model_copy / "nuclei.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        verify_folder(model_copy)
    (model_copy / "nuclei.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelLoadError, match="format"):
        verify_folder(model_copy)


def test_a_folder_with_the_centre_map_output_passes_the_check(model_copy):
    metadata = json.loads((model_copy / "nuclei.json").read_text())
    (model_copy / "nuclei.json").write_text(json.dumps({**metadata, "outputs": ["body", "boundary", "centre"]}))
    assert verify_folder(model_copy)["outputs"] == ["body", "boundary", "centre"]


@pytest.mark.parametrize("outputs", [["body"], ["body", "centre"], ["body", "boundary", "distance"], "body"])
def test_outputs_other_than_body_boundary_and_centre_are_refused(model_copy, outputs):
    """Post-processing reads channel 2 as the centre map: a folder saying otherwise is refused."""
    metadata = json.loads((model_copy / "nuclei.json").read_text())
    (model_copy / "nuclei.json").write_text(json.dumps({**metadata, "outputs": outputs}))
    with pytest.raises(ModelLoadError, match="'body', 'boundary' and optionally 'centre'"):
        verify_folder(model_copy)


@pytest.mark.parametrize("path,value,expected", [
    (("input", "size_multiple"), 0, "input.size_multiple must be between 1 and 256"),
    (("inference", "tile_size"), 10**7, "inference.tile_size must be between 64 and 4096"),
    (("postprocess", "threshold"), "0.5", "postprocess.threshold must be a number"),
    (("postprocess", "min_size"), 3.5, "postprocess.min_size must be a whole number"),
    (("inference", "tta"), "yes", "inference.tta must be true or false"),
    (("input", "normalisation", "high_percentile"), float("nan"), "high_percentile must be a number"),
    (("input", "normalisation", "high_percentile"), 0.5, "high_percentile must be between 50 and 100"),
    (("input", "normalisation", "noise_span"), -1, "noise_span must be between 0 and 100"),
])
def test_every_setting_is_type_and_range_checked(model_copy, path, value, expected):
    metadata = json.loads((model_copy / "nuclei.json").read_text())
    section = metadata
    for key in path[:-1]:
        section = section.setdefault(key, {})
    section[path[-1]] = value
    (model_copy / "nuclei.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match=expected.replace(".", r"\.")):
        verify_folder(model_copy)


def test_corrupt_weights(model_copy):
    weights = model_copy / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="model.weights.h5 is damaged or truncated .5,000 bytes") as raised:
        load_model_folder(model_copy)
    assert "could not be loaded" in str(raised.value) and "Error" not in str(raised.value)


def test_code_in_config_is_refused(model_copy):
    """safe_mode: a Lambda layer (pickled Python code) must not be deserialised."""
    config = json.loads((model_copy / "config.json").read_text())
    layers = config["config"]["layers"]
    lambda_layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                    "config": {"name": "evil", "function": {"class_name": "__lambda__", "config": {
                        "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMEAAAAfABTAKkBTqkAqQHaAXhyAgAAAHICAAAA+gg8c3RkaW4+2gg8bGFtYmRhPgEAAADzAAAAAA==",
                        "defaults": None, "closure": None}}, "output_shape": None},
                    "build_config": {"input_shape": [None, None, None, 3]},
                    "name": "evil", "inbound_nodes": layers[1]["inbound_nodes"]}
    layers.insert(1, lambda_layer)
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="unsafe|safe_mode"):
        load_model_folder(model_copy)


def test_not_a_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model_folder(tmp_path / "nothing")


class ForwardRecorder:
    """Stands in for the compiled forward pass: records which thread runs each batch and
    how many run at once (slow enough that unguarded threads would overlap)."""

    def __init__(self, forward):
        import threading

        self.forward, self.order, self.running, self.most = forward, [], 0, 0
        self.guard = threading.Lock()

    def __call__(self, batch):
        import threading
        import time

        with self.guard:
            self.running += 1
            self.most = max(self.most, self.running)
            self.order.append(threading.get_ident())
        time.sleep(0.01)
        try:
            return self.forward(batch)
        finally:
            with self.guard:
                self.running -= 1


def recorded(model):
    import copy

    from nuclei_app.model import compiled_forward

    twin = copy.copy(model)  # the same network, its own lock and recorder
    twin.lock = type(model.lock)()
    twin._forward = ForwardRecorder(compiled_forward(model.keras_model))
    return twin


def test_one_forward_pass_at_a_time_from_several_threads(tiny_model):
    """Streamlit serves each browser session from its own thread, all on one model."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    model = recorded(tiny_model)
    batches = [np.random.default_rng(i).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(model.predict, batches))
    assert model._forward.most == 1


def test_a_whole_image_is_segmented_in_one_turn(tiny_model):
    """Two sessions' images never interleave their tiles: each holds the model for all of its
    tiles (and memory holds one image's working set at a time)."""
    import itertools
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from nuclei_app.pipeline import predict

    model = recorded(tiny_model)
    model.metadata = {**model.metadata, "inference": {**model.metadata.get("inference", {}), "tile_size": 64,
                                                      "tile_overlap": 8}}
    images = [np.random.default_rng(i).uniform(0, 1, (200, 200, 3)).astype(np.float32) for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda image: predict(model, image, diameter=model.diameter or None), images))
    runs = [key for key, _ in itertools.groupby(model._forward.order)]
    assert len(model._forward.order) >= 3 * 4 and len(runs) == 3  # one unbroken run of tiles per image


def test_waiting_is_reported(tiny_model):
    import threading

    model = recorded(tiny_model)
    waited = []
    with model.in_turn():
        other = threading.Thread(target=lambda: model.in_turn(lambda: waited.append(1)).__enter__())
        other.start()
        other.join(timeout=0.2)
        assert waited == [1] and other.is_alive()
    other.join(timeout=5)


def test_a_folder_cannot_say_what_min_size_counts(model_copy):
    """The tuned minimum is at the model's scale; only a caller's --min-size counts image pixels."""
    metadata = json.loads((model_copy / "nuclei.json").read_text())
    metadata["postprocess"]["min_size_in_image_pixels"] = True
    (model_copy / "nuclei.json").write_text(json.dumps(metadata))
    settings = load_model_folder(model_copy).postprocess_settings
    assert not settings.min_size_in_image_pixels
    assert settings.min_size == metadata["postprocess"]["min_size"]
