"""The network's forward pass on TensorFlow Lite's XNNPACK CPU kernels (the CLI's default).

The same network, weights and float32 arithmetic as TensorFlow's own kernels (probabilities
within ~1e-5), with less work per pass: on a 2-core AVX2 CPU, a 336x336 image took 98 ms and
180 ms of CPU against TensorFlow's 130 ms and 241 ms, and in one thread 138 ms of CPU
(``python -m benchmarks.engines``). Less CPU for the network leaves more of the machine for
the batch's reading, watershed and writing.

The interpreter keeps its working memory between calls, sized by the largest input so far
(~0.3 GB more than TensorFlow at the 4x512x512 of flip TTA), so the app, which must give
memory back after each session, keeps TensorFlow's kernels.

The converted network is made here from the Keras model loaded with ``safe_mode``, never read
from a model folder: a flatbuffer from elsewhere is not trusted. Conversion takes seconds, so
the result is cached on disk under a digest of the network (config and weights) and of
TensorFlow's version; a cache that can't be written only costs the conversion again.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .quiet import silenced_stderr_fd

CACHE_ENV_VAR = "NUCLEI_CACHE_DIR"


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nuclei_app"
    return Path(os.environ.get(CACHE_ENV_VAR) or default) / "xnnpack"


def network_digest(keras_model) -> str:
    import tensorflow as tf

    digest = hashlib.sha256(tf.__version__.encode())
    digest.update(keras_model.to_json().encode())
    for weights in keras_model.get_weights():
        digest.update(str(weights.shape).encode())
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:32]


def convert(keras_model) -> bytes:
    """The Keras model as a TensorFlow Lite flatbuffer with open batch, height and width."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="nuclei_xnnpack_") as folder, silenced_stderr_fd():
        keras_model.export(folder, format="tf_saved_model", verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(folder).convert()


def cached_flatbuffer(keras_model, folder: Path | None = None) -> bytes:
    folder = folder or cache_dir()
    path = folder / f"{network_digest(keras_model)}.tflite"
    try:
        return path.read_bytes()
    except OSError:
        pass
    flatbuffer = convert(keras_model)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(flatbuffer)
        os.replace(partial, path)  # atomic: a concurrent process reads all of it or nothing
    except OSError:
        pass
    return flatbuffer


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class XnnpackForward:
    """Callable like the compiled forward pass: (N, H, W, 3) float32 -> (N, H, W, C)."""

    def __init__(self, flatbuffer: bytes, threads: int | None = None):
        import tensorflow as tf

        with warnings.catch_warnings(), silenced_stderr_fd():
            # tf.lite.Interpreter warns that LiteRT (another package) will replace it; it is
            # the same interpreter, and TensorFlow is pinned.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            self._interpreter = tf.lite.Interpreter(model_content=flatbuffer,
                                                    num_threads=threads or default_threads())
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input, batch.shape, strict=False)
            with silenced_stderr_fd():  # the delegate announces itself on the first allocation
                self._interpreter.allocate_tensors()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)


def xnnpack_forward(keras_model, threads: int | None = None) -> XnnpackForward:
    return XnnpackForward(cached_flatbuffer(keras_model), threads)
