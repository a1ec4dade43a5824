"""The network's forward pass on TensorFlow Lite's XNNPACK CPU kernels (the CLI's default
where they are the faster ones).

The same network, weights and float32 arithmetic as TensorFlow's own kernels (probabilities
within ~3e-6), with less work per pass where TensorFlow computes on its generic kernels: on a
2-core AVX2 CPU a 336x336 input took 85 ms and 155 ms of CPU against TensorFlow's 116 ms and
214 ms (``python -m benchmarks.engines``, docs/benchmark_throughput.txt). Less CPU for the
network leaves more of the machine for the batch's reading, watershed and writing. Where
TensorFlow runs its oneDNN kernels with AVX-512 (processors with AVX-512 VNNI / BF16 or AMX,
where TensorFlow turns them on by itself) it is the faster one: 78 ms and 140 ms of CPU
against XNNPACK's 92 ms and 160 ms on a 2-core Xeon with AMX, and 6.11 against 5.41
images/s in the CLI's batch (same file), so ``--engine auto`` takes TensorFlow's kernels
there (``preferred_here``).

The interpreter keeps its working memory between calls, sized by the largest input so far
(peak RSS 1.36 GB against TensorFlow's 0.98-1.01 GB at the 4x512x512 of flip TTA, ``python -m
benchmarks.engines --memory``), so the app, which must give memory back after each session,
keeps TensorFlow's kernels.

The converted network is made here from the Keras model loaded with ``safe_mode``, never
taken from a model folder. Conversion takes seconds, so it is cached in the user's own cache
folder under a digest of the network (config and weights) and of the converting versions,
with a checksum beside it: a file that was cut short or damaged is converted again.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from .config import user_cache_dir
from .machine import core_count, cpu_flags, tensorflow_runs_onednn
from .quiet import silenced_stderr_fd

CACHE_ENV_VAR = "NUCLEI_CACHE_DIR"
# Bumped when convert() changes what it makes: older cached files are then not used.
CACHE_FORMAT = "1"


def preferred_here() -> bool:
    """Whether ``--engine auto`` runs float32 on XNNPACK here: everywhere but where TensorFlow
    computes on its oneDNN kernels with AVX-512 (measured faster than XNNPACK on a Xeon with
    AVX-512 and AMX; float32 uses AVX-512, not AMX). Without AVX-512 oneDNN's kernels were the
    slower (an AVX2 EPYC with TF_ENABLE_ONEDNN_OPTS=1: a 512x512 pass 609 ms against 293 ms
    without them, ``benchmarks.cpu_kernels``), so an AVX-VNNI laptop keeps XNNPACK."""
    return not ("avx512f" in cpu_flags() and tensorflow_runs_onednn())


def cache_dir() -> Path:
    default = user_cache_dir() / "nuclei_app"
    return Path(os.environ.get(CACHE_ENV_VAR) or default) / "xnnpack"


def network_digest(keras_model) -> str:
    import keras
    import tensorflow as tf

    digest = hashlib.sha256(f"{CACHE_FORMAT} {tf.__version__} {keras.__version__}".encode())
    digest.update(keras_model.to_json().encode())
    for weights in keras_model.get_weights():
        digest.update(str(weights.shape).encode())
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:32]


def convert(keras_model, calibration: list[np.ndarray] | None = None) -> bytes:
    """The Keras model as a TensorFlow Lite flatbuffer with open batch, height and width;
    ``calibration``: network inputs to quantize it to int8 with (quantize.py), else float32."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="nuclei_xnnpack_") as folder, silenced_stderr_fd():
        keras_model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if calibration is not None:
            from .quantize import quantize_settings

            quantize_settings(converter, calibration)
        return converter.convert()


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_cached(path: Path) -> bytes | None:
    """The cached flatbuffer if it is whole (its checksum file agrees), else None."""
    try:
        data = path.read_bytes()
        expected = path.with_suffix(".sha256").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return data if checksum(data) == expected else None


def write_atomically(path: Path, data: bytes) -> None:
    """Whole or not at all, whoever else (another worker, another host) writes the same file."""
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def cached_flatbuffer(keras_model, folder: Path | None = None, calibration: list[np.ndarray] | None = None) -> bytes:
    """``convert``'s flatbuffer, from the cache where it was made before (int8: with the same calibration)."""
    from .quantize import QUANTIZE_FORMAT, calibration_digest

    folder = folder or cache_dir()
    name = network_digest(keras_model)
    if calibration is not None:   # the quantizer's settings and the calibration name the int8 network
        name += f"-int8-{QUANTIZE_FORMAT}-{calibration_digest(calibration)}"
    path = folder / f"{name}.tflite"
    cached = read_cached(path)
    if cached is not None:
        return cached
    # Seconds without output otherwise (a new user took the first int8 run for hung).
    print(f"converting the network for XNNPACK{' in int8' if calibration is not None else ''} (once: it is "
          f"cached in {folder})...", file=sys.stderr)
    flatbuffer = convert(keras_model, calibration)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The flatbuffer first, then its checksum: a reader sees a checksum only for a whole file.
        write_atomically(path, flatbuffer)
        write_atomically(path.with_suffix(".sha256"), checksum(flatbuffer).encode())
    except OSError:
        pass  # a cache that can't be written costs only the conversion, next time too
    return flatbuffer


def default_threads() -> int:
    """What TensorFlow would use: TF_NUM_INTRAOP_THREADS where set (local Dask workers share
    the cores that way), else every core this process may run on."""
    setting = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    return int(setting) if setting.isdigit() and int(setting) > 0 else core_count()


# The delegate announces itself on stderr on the first allocation in a process, and only then:
# that one is silenced, later ones leave stderr (other threads' messages) alone.
_announced = threading.Event()


class XnnpackForward:
    """Callable like the compiled forward pass: (N, H, W, 3) float32 -> (N, H, W, C)."""

    def __init__(self, flatbuffer: bytes, threads: int | None = None):
        import tensorflow as tf

        with warnings.catch_warnings():
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
            self._allocate()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)

    def _allocate(self) -> None:
        if _announced.is_set():
            self._interpreter.allocate_tensors()
            return
        with silenced_stderr_fd():
            self._interpreter.allocate_tensors()
        _announced.set()


def xnnpack_forward(keras_model, threads: int | None = None,
                    calibration: list[np.ndarray] | None = None) -> XnnpackForward:
    """The float32 network on XNNPACK, or with ``calibration`` its int8 quantization (quantize.py)."""
    return XnnpackForward(cached_flatbuffer(keras_model, calibration=calibration), threads)
