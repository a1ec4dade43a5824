"""bfloat16 inference: chosen only where the CPU has it (auto), the same weights, close outputs."""
from __future__ import annotations

import numpy as np
import pytest

from nuclei_app import precision
from nuclei_app.model import load_model_folder
from nuclei_app.precision import bfloat16_copy, cpu_has_bf16, resolve


def write_cpuinfo(path, flags: str):
    path.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: fpu sse2 {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: fpu sse2 {flags}\n")
    return path


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    assert cpu_has_bf16(write_cpuinfo(tmp_path / "a", "avx512f avx512_bf16"))
    assert cpu_has_bf16(write_cpuinfo(tmp_path / "b", "amx_tile amx_bf16"))
    assert not cpu_has_bf16(write_cpuinfo(tmp_path / "c", "avx2 avx512f avx512_vnni"))
    assert not cpu_has_bf16(tmp_path / "no-such-file")  # not Linux: float32


def test_auto_keeps_float32_where_the_cpu_lacks_bfloat16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert resolve("auto") == "float32" and resolve("bfloat16") == "bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert resolve("auto") == "bfloat16" and resolve("float32") == "float32"
    assert resolve("int8") == "int8"   # asked for by name, never auto's choice
    with pytest.raises(ValueError, match="float32, bfloat16, int8, auto"):
        resolve("float16")


def test_the_bfloat16_copy_has_the_same_weights_and_a_float32_output(tiny_model):
    network = bfloat16_copy(tiny_model.keras_model)
    policies = {layer.name: layer.dtype_policy.name for layer in network.layers if layer.name != "image"}
    assert policies.pop("probabilities") == "float32" and set(policies.values()) == {"mixed_bfloat16"}
    for mine, theirs in zip(network.get_weights(), tiny_model.keras_model.get_weights()):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)


def test_a_model_set_to_bfloat16_predicts_close_to_float32(tiny_model_dir):
    model = load_model_folder(tiny_model_dir)
    batch = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    exact = model.predict(batch)
    model.set_precision("bfloat16")
    approximate = model.predict(batch)
    assert model.precision == "bfloat16" and approximate.dtype == np.float32
    assert 0 < np.abs(approximate - exact).max() < 0.1  # it did change the arithmetic, not the answer
    model.set_precision("float32")
    assert np.array_equal(model.predict(batch), exact)
