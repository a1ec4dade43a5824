"""The network's arithmetic: float32, or bfloat16 where the CPU computes it natively.

Processors with AVX-512 BF16 or AMX (Intel since Cooper Lake / Sapphire Rapids, AMD since
Zen 4) multiply bfloat16 at about twice the float32 rate, and TensorFlow's oneDNN kernels use
that. The same weights in a Keras ``mixed_bfloat16`` copy of the network (every layer but the
sigmoid output computes in bfloat16, the weights stay float32) give probabilities within a few
hundredths of float32's. Elsewhere bfloat16 is emulated and slower, so ``auto`` keeps float32
there. Both score the same on the validation split (``docs/precision_validation.txt``,
from ``train.evaluate --precision``).

``int8`` quantizes weights and activations to 8-bit integers and runs on XNNPACK's kernels
(quantize.py): a pass took about half float32's time on a 2-core Xeon with AVX-512 VNNI
(``benchmarks.throughput``), with the validation scores held. Never chosen by ``auto``: it is
asked for by name.
"""
from __future__ import annotations

import copy
from pathlib import Path

from .machine import CPUINFO, cpu_flags

PRECISIONS = ("float32", "bfloat16", "int8", "auto")
# cpuinfo flags of native bfloat16 arithmetic.
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
# The output layer keeps float32: its sigmoid and the probabilities thresholds are read from.
OUTPUT_LAYER = "probabilities"


def cpu_has_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """True where the CPU advertises native bfloat16 arithmetic (Linux; elsewhere False)."""
    return bool(cpu_flags(cpuinfo) & BF16_FLAGS)


def resolve(precision: str) -> str:
    """``float32``, ``bfloat16`` or ``int8``: ``auto`` chooses bfloat16 only on a CPU that has it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "auto":
        return "bfloat16" if cpu_has_bf16() else "float32"
    return precision


def bfloat16_copy(keras_model):
    """The same network and weights computing in bfloat16 (``mixed_bfloat16``), output in float32."""
    import keras

    config = copy.deepcopy(keras_model.get_config())
    for layer in config["layers"]:
        settings = layer["config"]
        if layer["class_name"] != "InputLayer" and settings.get("name") != OUTPUT_LAYER and "dtype" in settings:
            settings["dtype"] = "mixed_bfloat16"
    network = keras.Model.from_config(config)
    network.set_weights(keras_model.get_weights())
    return network


def computed_in(keras_model) -> str:
    """``bfloat16`` if the network's layers compute in it (a ``bfloat16_copy``), else ``float32``."""
    return "bfloat16" if any(layer.compute_dtype == "bfloat16" for layer in keras_model.layers) else "float32"
