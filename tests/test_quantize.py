"""The int8 network: calibrated on the bundled samples at the model's scale, cached apart from
the float32 one, and close to float32's probabilities."""
import numpy as np

from nuclei_app import quantize, xnnpack
from nuclei_app.model import compiled_forward


def test_calibration_is_the_samples_at_the_model_s_scale_and_repeatable(tiny_model):
    inputs = quantize.calibration_inputs(tiny_model)
    samples = len(list((quantize.SAMPLES_DIR / "images").glob("*.png")))
    assert len(inputs) == samples * quantize.CROPS_PER_SAMPLE
    crop = quantize.CALIBRATION_CROP
    assert all(array.shape == (1, crop, crop, 3) and array.dtype == np.float32 for array in inputs)
    # Prepared as the pipeline prepares an image: stretched, not raw 0-255 pixels.
    assert 0.0 <= min(a.min() for a in inputs) and max(a.max() for a in inputs) <= 1.5
    again = quantize.calibration_inputs(tiny_model)
    assert quantize.calibration_digest(inputs) == quantize.calibration_digest(again)


def tensor_types(flatbuffer: bytes) -> set:
    return {d["dtype"] for d in xnnpack.XnnpackForward(flatbuffer)._interpreter.get_tensor_details()}


def test_int8_network_is_integer_cached_apart_and_close_to_float32(tiny_model, tmp_path, capsys):
    inputs = quantize.calibration_inputs(tiny_model)
    float32 = xnnpack.cached_flatbuffer(tiny_model.keras_model, tmp_path)
    int8 = xnnpack.cached_flatbuffer(tiny_model.keras_model, tmp_path, calibration=inputs)
    # Said while it converts (seconds of silence read as a hang), not when read from the cache.
    assert f"converting the network for XNNPACK in int8 (once: it is cached in {tmp_path})" in capsys.readouterr().err
    assert len(list(tmp_path.glob("*-int8-*.tflite"))) == 1 and len(list(tmp_path.glob("*.tflite"))) == 2
    assert tensor_types(int8) >= {np.int8, np.int32} and np.int8 not in tensor_types(float32)   # 8-bit arithmetic
    assert xnnpack.cached_flatbuffer(tiny_model.keras_model, tmp_path, calibration=inputs) == int8
    assert "converting" not in capsys.readouterr().err
    reference = compiled_forward(tiny_model.keras_model)
    forward = xnnpack.XnnpackForward(int8)
    for batch in (inputs[0], np.concatenate(inputs[1:5]), inputs[-1][:, :96, :64]):
        expected, got = np.asarray(reference(batch)), forward(batch)
        assert got.shape == expected.shape and got.dtype == np.float32
        assert np.abs(got - expected).mean() < 0.02
        assert np.abs(got - expected).max() < 0.25


def test_a_model_that_can_t_be_quantized_computes_in_float32(tiny_model_dir, monkeypatch, capsys):
    from nuclei_app.model import load_model_folder

    model = load_model_folder(tiny_model_dir)
    model.set_precision("int8")

    def refuse(*_):
        raise RuntimeError("an operation without an int8 kernel")
    monkeypatch.setattr(quantize, "quantize_settings", refuse)
    monkeypatch.setenv(xnnpack.CACHE_ENV_VAR, str(tiny_model_dir.parent / "empty_cache"))
    batch = np.zeros((1, 32, 32, 3), np.float32)
    assert model.predict(batch).shape[:3] == (1, 32, 32)
    assert model.precision == "float32"
    # A Dask worker asks for int8 again with every task: no second conversion, no second warning.
    model.set_precision("int8")
    assert model.precision == "float32"
    model.predict(batch)
    assert capsys.readouterr().err.count("could not be quantized to int8 (an operation without an int8 kernel); "
                                         "computing in float32") == 1


def test_without_the_bundled_samples_int8_says_what_is_missing(tiny_model, tmp_path, monkeypatch):
    import pytest

    (tmp_path / "images").mkdir()
    monkeypatch.setattr(quantize, "SAMPLES_DIR", tmp_path)
    with pytest.raises(quantize.CalibrationError, match="none are there; reinstall the app's files or use "
                                                         "--precision float32"):
        quantize.calibration_inputs(tiny_model)
    (tmp_path / "images" / "a.png").write_bytes(b"")
    with pytest.raises(quantize.CalibrationError, match="these lack it: a.png"):
        quantize.calibration_inputs(tiny_model)


def test_the_bundled_model_in_int8_scores_as_in_float32_on_the_samples(tmp_path, monkeypatch):
    """The real network, not the tiny one: int8's labels score within a few hundredths of
    float32's against each sample's ground truth (the validation split: docs/precision_validation.txt)."""
    from nuclei_app.imageio import read_image
    from nuclei_app.label_files import read_labels
    from nuclei_app.metrics import image_scores
    from nuclei_app.model import load_model_folder
    from nuclei_app.pipeline import segment
    from tests.conftest import BUNDLED_MODEL

    monkeypatch.setenv(xnnpack.CACHE_ENV_VAR, str(tmp_path))
    model = load_model_folder(BUNDLED_MODEL)
    scores = {}
    for precision in ("float32", "int8"):
        model.set_precision(precision)
        scores[precision] = [image_scores(read_labels(quantize.SAMPLES_DIR / "ground_truth" / path.name),
                                          segment(model, read_image(path)).labels).mean_ap
                             for path in sorted((quantize.SAMPLES_DIR / "images").glob("*.png"))]
    assert model.runs_on == "xnnpack" and model.precision == "int8"
    assert np.mean(scores["int8"]) >= np.mean(scores["float32"]) - 0.02, scores
    assert all(abs(a - b) <= 0.06 for a, b in zip(scores["int8"], scores["float32"])), scores
