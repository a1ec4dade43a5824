"""The XNNPACK forward pass: the same probabilities as TensorFlow's, converted once and cached."""
import numpy as np
import pytest

from nuclei_app import xnnpack
from nuclei_app.model import compiled_forward, load_model_folder


def batches():
    rng = np.random.default_rng(0)
    # Shapes change between calls, as images of different sizes do: the interpreter resizes.
    return [rng.random(shape, dtype=np.float32) for shape in ((1, 64, 64, 3), (4, 48, 80, 3), (1, 64, 64, 3))]


def test_xnnpack_gives_tensorflows_probabilities(tiny_model, tmp_path):
    forward = xnnpack.XnnpackForward(xnnpack.cached_flatbuffer(tiny_model.keras_model, tmp_path))
    reference = compiled_forward(tiny_model.keras_model)
    for batch in batches():
        expected = np.asarray(reference(batch))
        got = forward(batch)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_conversion_is_cached_and_read_back(tiny_model, tmp_path, monkeypatch):
    first = xnnpack.cached_flatbuffer(tiny_model.keras_model, tmp_path)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".sha256", ".tflite"]  # no partial files left

    def no_conversion(_):
        raise AssertionError("converted again although the cache holds the network")

    monkeypatch.setattr(xnnpack, "convert", no_conversion)
    assert xnnpack.cached_flatbuffer(tiny_model.keras_model, tmp_path) == first


def test_a_damaged_cached_file_is_converted_again(tiny_model, tmp_path):
    whole = xnnpack.cached_flatbuffer(tiny_model.keras_model, tmp_path)
    (cached,) = tmp_path.glob("*.tflite")
    cached.write_bytes(whole[: len(whole) // 2])  # a copy cut short
    assert xnnpack.cached_flatbuffer(tiny_model.keras_model, tmp_path) == whole
    assert cached.read_bytes() == whole


def test_threads_follow_tensorflows_setting(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")  # as local Dask workers get it
    assert xnnpack.default_threads() == 1
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert xnnpack.default_threads() >= 1


def test_an_unwritable_cache_costs_only_the_conversion(tiny_model, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    flatbuffer = xnnpack.cached_flatbuffer(tiny_model.keras_model, blocker / "cache")
    batch = batches()[0]
    np.testing.assert_allclose(xnnpack.XnnpackForward(flatbuffer)(batch),
                               np.asarray(compiled_forward(tiny_model.keras_model)(batch)), atol=1e-4)


def test_other_weights_have_another_digest(tiny_model_dir):
    model = load_model_folder(tiny_model_dir)
    before = xnnpack.network_digest(model.keras_model)
    weights = model.keras_model.get_weights()
    model.keras_model.set_weights([weights[0] + 1e-3] + weights[1:])
    assert xnnpack.network_digest(model.keras_model) != before


def test_the_engine_follows_the_precision(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(xnnpack, "preferred_here", lambda: True)
    model = load_model_folder(tiny_model_dir)
    assert model.runs_on == "tensorflow"  # the default: the app's
    model.set_engine("auto")
    assert model.runs_on == "xnnpack"
    model.set_precision("bfloat16")
    assert model.runs_on == "tensorflow"  # XNNPACK computes float32 and int8, not bfloat16
    model.set_engine("tensorflow")
    model.set_precision("int8")
    assert model.runs_on == "xnnpack"     # int8 runs on XNNPACK whatever the engine
    model.set_precision("float32")
    model.set_engine("xnnpack")
    assert model.runs_on == "xnnpack"
    with pytest.raises(ValueError, match="engine must be one of"):
        model.set_engine("gpu")


def test_auto_takes_tensorflows_kernels_where_they_run_onednn_with_avx512(tiny_model_dir, monkeypatch):
    model = load_model_folder(tiny_model_dir)
    model.set_engine("auto")
    # (the CPU has AVX-512, TensorFlow runs oneDNN) -> kernels of --engine auto
    cases = {(True, True): "tensorflow", (False, False): "xnnpack",
             (True, False): "xnnpack",    # turned off with TF_ENABLE_ONEDNN_OPTS=0
             (False, True): "xnnpack"}    # oneDNN forced on an AVX2 CPU: slower than XNNPACK there
    for (avx512, onednn), kernels in cases.items():
        monkeypatch.setattr(xnnpack, "cpu_flags", lambda: {"avx2", "avx512f"} if avx512 else {"avx2"})
        monkeypatch.setattr(xnnpack, "tensorflow_runs_onednn", lambda: onednn)
        assert model.runs_on == kernels, (avx512, onednn)


def test_a_network_xnnpack_cannot_take_runs_on_tensorflow(tiny_model_dir, tmp_path, monkeypatch, capsys):
    def failing(*_):
        raise RuntimeError("unsupported operation")

    monkeypatch.setattr(xnnpack, "convert", failing)
    monkeypatch.setenv(xnnpack.CACHE_ENV_VAR, str(tmp_path))
    model = load_model_folder(tiny_model_dir)
    model.set_engine("xnnpack")
    batch = batches()[0]
    np.testing.assert_allclose(model.predict(batch), np.asarray(compiled_forward(model.keras_model)(batch)), atol=1e-6)
    assert model.runs_on == "tensorflow"
    model.set_engine("auto")  # as a Dask worker does for every task: no second attempt
    model.predict(batch)
    assert capsys.readouterr().err.count("could not be prepared for XNNPACK (unsupported operation)") == 1
