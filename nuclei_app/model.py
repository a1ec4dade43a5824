"""The model folder (contract in DESIGN.md): verify it, load it safely, read its settings.

A model folder holds Keras 3's unzipped files (``config.json``, ``metadata.json``,
``model.weights.h5``), ``nuclei.json`` (how to use the model) and a model card
``README.md``. Loading always uses ``safe_mode=True``: a folder from anywhere can't make us
run code.
"""
from __future__ import annotations

import hashlib
import json
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from .config import InferenceSettings, Normalisation, PostprocessSettings
from .validation_record import scored_on_training_image, scores_caveat, scores_for_new_images, training_record

KERAS_FILES = ("config.json", "metadata.json", "model.weights.h5")
METADATA_FILE = "nuclei.json"
MODEL_CARD = "README.md"
REQUIRED_FILES = KERAS_FILES + (METADATA_FILE,)
FORMAT = "nuclei-model/1"
ENGINES = ("tensorflow", "xnnpack", "auto")


def model_digest(folder: Path) -> str:
    """The first 12 hex digits of the SHA-256 of a model folder's weights and its nuclei.json
    (the tuned thresholds and sizes): which model, wherever its folder lies (summary.csv's
    settings)."""
    digest = hashlib.sha256()
    for name in ("model.weights.h5", METADATA_FILE):
        with (folder / name).open("rb") as part:
            for block in iter(lambda: part.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


class ModelLoadError(RuntimeError):
    """A model source could not be used; the message says which and why."""


@dataclass
class NucleiModel:
    keras_model: object
    metadata: dict
    folder: Path
    source: str                      # what the user asked for, e.g. "assets/model" or "hf://a/b@main"
    revision: str | None = None      # commit hash when the model came from the Hub
    notice: str | None = None        # set when a fallback happened: shown to the user
    fallback_from: str | None = None  # the source asked for, where this (bundled) model replaced it
    # The one rule for sharing a model: one segmentation at a time per process. ``in_turn``
    # holds it for a whole image (every tile, a diameter re-run) and ``predict`` for each
    # batch (re-entrant), so direct callers are safe too. Why: Keras models are not
    # documented as thread-safe, and TensorFlow already uses every core for one image, so
    # turns cost no speed while bounding memory to one image's working set.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    precision: str = "float32"       # the network's arithmetic: float32, bfloat16 or int8 (precision.py)
    # Whose kernels run it: "tensorflow", or "xnnpack" (xnnpack.py: float32, and int8 always).
    # "auto" (the CLI's default): XNNPACK for float32 where it is the faster (xnnpack.preferred_here),
    # TensorFlow for bfloat16 and on processors where TensorFlow's oneDNN kernels are on.
    engine: str = "tensorflow"
    _forward: object = field(default=None, repr=False)
    _xnnpack_failed: bool = field(default=False, repr=False)
    _int8_failed: bool = field(default=False, repr=False)   # then int8 is asked for in vain (float32)
    _digest: str | None = field(default=None, repr=False)

    def digest(self) -> str:
        """``model_digest`` of the folder, taken once: the weights loaded, not what the folder
        holds later, and no 8 MB hash on every page rerun."""
        if self._digest is None:
            self._digest = model_digest(self.folder)
        return self._digest

    def identity(self) -> str:
        """The model as summary.csv's settings name it: its digest, and the source it replaced
        (a user test: a fallback was said on stderr only, which a cluster job loses)."""
        replaced = f" (bundled: {self.fallback_from} could not be used)" if self.fallback_from else ""
        return self.digest() + replaced

    def set_precision(self, precision: str) -> None:
        """``float32``, ``bfloat16``, ``int8`` or ``auto`` (bfloat16 where the CPU has it); see precision.py."""
        from .precision import resolve

        chosen = resolve(precision)
        if chosen == "int8" and self._int8_failed:   # a Dask worker asks again for every task
            chosen = "float32"
        with self.lock:
            if chosen != self.precision:
                self.precision, self._forward = chosen, None

    def set_engine(self, engine: str) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
        with self.lock:
            if engine != self.engine:
                self.engine, self._forward = engine, None

    @property
    def runs_on(self) -> str:
        """The kernels the next pass uses: XNNPACK computes float32 and int8, under TensorFlow."""
        import keras

        if self.precision == "int8":   # on XNNPACK only (a failed quantization falls back to float32)
            return "xnnpack"
        if keras.backend.backend() != "tensorflow" or self.precision != "float32" or self._xnnpack_failed:
            return "tensorflow"
        if self.engine == "auto":
            from .xnnpack import preferred_here

            return "xnnpack" if preferred_here() else "tensorflow"
        return self.engine

    @property
    def normalisation(self) -> Normalisation:
        return normalisation_of(self.metadata)

    @property
    def postprocess_settings(self) -> PostprocessSettings:
        return postprocess_of(self.metadata)

    @property
    def inference_settings(self) -> InferenceSettings:
        return _dataclass_from(InferenceSettings, self.metadata.get("inference", {}))

    @property
    def size_multiple(self) -> int:
        return int(self.metadata["input"].get("size_multiple", 16))  # validated: 1 to 256

    @property
    def diameter(self) -> float | None:
        """The nucleus diameter (px) the network was trained at; None for older folders,
        which run at the image's own scale."""
        value = (self.metadata.get("scale") or {}).get("diameter")
        return float(value) if value else None

    @property
    def validation_metrics(self) -> dict:
        return self.metadata.get("metrics", {})

    @property
    def scored_on_training_image(self) -> bool:
        """Validated on an image it trained on (too few images for a split): no score for new images."""
        return scored_on_training_image(training_record(self.metadata))

    @property
    def scores_caveat(self) -> str | None:
        """What to say beside this model's scores where they flatter it (one wording for page and CLI)."""
        return scores_caveat(training_record(self.metadata))

    @property
    def scores_for_new_images(self) -> dict:
        """``validation_metrics`` where they are of images it never trained on, else {} (the confidence shown)."""
        return scores_for_new_images(self.metadata)

    @contextmanager
    def in_turn(self, on_wait: Callable[[], None] | None = None):
        """Holds the model for one segmentation; ``on_wait`` is called first if another
        one (another browser session) has it, so the caller can say so."""
        if not self.lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
            self.lock.acquire()
        try:
            yield self
        finally:
            self.lock.release()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.prepare()
            return np.asarray(self._forward(batch))

    def prepare(self) -> None:
        """Makes the forward pass now (XNNPACK: converted once, then read from the cache)
        rather than on the first image."""
        with self.lock:
            if self._forward is None:
                self._forward = self._make_forward()

    def _make_forward(self):
        if self.precision == "int8":
            from .quantize import calibration_inputs
            from .xnnpack import xnnpack_forward

            try:
                return xnnpack_forward(self.keras_model, calibration=calibration_inputs(self))
            except Exception as error:  # a network the converter can't quantize whole
                # Remembered for good, as _xnnpack_failed is: no second conversion, no second warning.
                self.precision, self._int8_failed = "float32", True
                print(f"warning: the network could not be quantized to int8 ({error}); computing in float32.",
                      file=sys.stderr)
        if self.runs_on == "xnnpack":
            from .xnnpack import xnnpack_forward

            try:
                return xnnpack_forward(self.keras_model)
            except Exception as error:  # conversion of an unusual network: TensorFlow still runs it
                # Remembered for good (a Dask worker sets the engine again for every task).
                self._xnnpack_failed = True
                print(f"warning: the network could not be prepared for XNNPACK ({error}); "
                      "using TensorFlow's kernels.", file=sys.stderr)
        return compiled_forward(self.network())

    def network(self):
        """The Keras model that computes, in this model's precision."""
        if self.precision == "bfloat16":
            from .precision import bfloat16_copy

            return bfloat16_copy(self.keras_model)
        return self.keras_model

    def __call__(self, batch, training: bool = False):
        return self.predict(batch)


def compiled_forward(keras_model):
    """The forward pass as one TensorFlow graph: convolution, batch norm and ReLU are fused,
    about twice as fast on CPU as eager calls, with less memory held between layers. Any
    height and width share one graph (reduce_retracing relaxes the traced shape).

    Under another Keras backend (PyTorch or JAX, for training experiments on a machine
    without TensorFlow) the model is called as it is, and its output brought back to NumPy."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda batch: keras.ops.convert_to_numpy(keras_model(batch, training=False))
    import tensorflow as tf

    return tf.function(lambda batch: keras_model(batch, training=False), reduce_retracing=True)


def _dataclass_from(cls, values: dict):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def normalisation_of(metadata: dict) -> Normalisation:
    """A folder's input normalisation; a setting added since it was written at its default."""
    return _dataclass_from(Normalisation, metadata["input"]["normalisation"])


def postprocess_of(metadata: dict) -> PostprocessSettings:
    """A folder's tuned post-processing settings. Only the tuned values: what min_size counts is
    the caller's to say, never a folder's."""
    stored = metadata.get("postprocess", {})
    return PostprocessSettings(**{key: stored[key] for key in PostprocessSettings.TUNED if key in stored})


def verify_folder(folder: Path, label: str | None = None) -> dict:
    """Checks the files and ``nuclei.json`` of a model folder; returns the metadata."""
    label = label or str(folder)
    if folder.is_file():
        raise ModelLoadError(f"{label} is a file, not a model folder (a folder with config.json, "
                             f"model.weights.h5 and {METADATA_FILE}).")
    if not folder.is_dir():
        raise ModelLoadError(f"model folder {label} does not exist.")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        inside = folder / "model"   # a training run's folder holds its exported model there
        hint = (f" It looks like a training run: its model folder is {inside}." if (inside / METADATA_FILE).is_file()
                else "")
        raise ModelLoadError(f"model folder {label} is incomplete: missing {', '.join(missing)}.{hint}")
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{label}: {METADATA_FILE} is not valid JSON ({error}).") from None
    problems = metadata_problems(metadata)
    if problems:
        raise ModelLoadError(f"{label}: {METADATA_FILE} is invalid: {'; '.join(problems)}.")
    return metadata


def metadata_problems(metadata) -> list[str]:
    if not isinstance(metadata, dict):
        return ["not a JSON object"]
    problems = []
    if metadata.get("format") != FORMAT:
        problems.append(f"format is {metadata.get('format')!r}, expected {FORMAT!r}")
    normalisation = metadata.get("input", {}).get("normalisation") if isinstance(metadata.get("input"), dict) else None
    if not isinstance(normalisation, dict):
        problems.append("input.normalisation is missing")
    outputs = metadata.get("outputs")
    if not (isinstance(outputs, list) and outputs[:2] == ["body", "boundary"] and outputs[2:] in ([], ["centre"])):
        problems.append("outputs must list the output channels: 'body', 'boundary' and optionally 'centre'")
    if not isinstance(metadata.get("postprocess", {}), dict):
        problems.append("postprocess must be an object")
    for section in ("scale", "inference"):
        if not isinstance(metadata.get(section, {}), dict):
            problems.append(f"{section} must be an object")
    if problems:
        return problems
    problems += [problem for path, rule in FIELD_RULES.items() if (problem := _field_problem(metadata, path, rule))]
    normalisation = metadata["input"]["normalisation"]
    if not problems and normalisation.get("low_percentile", 1.0) >= normalisation.get("high_percentile", 99.8):
        problems.append("input.normalisation.low_percentile must be below high_percentile")
    return problems


@dataclass(frozen=True)
class Rule:
    kind: type            # int, float (ints accepted) or bool
    low: float = 0.0
    high: float = 0.0


# Every setting a model folder can carry, with the range the code can use. A folder from the
# Hub can't run code, but without these a value like size_multiple 0 (division by zero), a
# tile_size of a million (no tiling: gigabytes per image) or a string would break the app
# mid-run for every visitor; with them it is refused at load time with the reason.
FIELD_RULES = {
    ("input", "size_multiple"): Rule(int, 1, 256),
    ("input", "normalisation", "low_percentile"): Rule(float, 0, 50),
    ("input", "normalisation", "high_percentile"): Rule(float, 50, 100),
    ("input", "normalisation", "invert_light_background"): Rule(bool),
    ("input", "normalisation", "light_background_level"): Rule(float, 0, 1),
    ("input", "normalisation", "noise_span"): Rule(float, 0, 100),
    ("inference", "tile_size"): Rule(int, 64, 4096),
    ("inference", "tile_overlap"): Rule(int, 0, 512),
    ("inference", "tta"): Rule(bool),
    ("inference", "tta_light"): Rule(bool),
    ("postprocess", "threshold"): Rule(float, 0, 1),
    ("postprocess", "marker_threshold"): Rule(float, 0, 1),
    ("postprocess", "min_size"): Rule(int, 0, 100_000),
    ("scale", "diameter"): Rule(float, 2, 500),
}


def _field_problem(metadata: dict, path: tuple[str, ...], rule: Rule) -> str | None:
    """None if the field is absent (defaults apply) or valid; else what is wrong with it."""
    value = metadata
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if value is None and path == ("scale", "diameter"):
        return None  # an explicit "no training diameter": the image's own scale
    name = ".".join(path)
    if rule.kind is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if rule.kind is int and not (is_number and float(value).is_integer()):
        return f"{name} must be a whole number, got {value!r}"
    if not is_number or not np.isfinite(value):
        return f"{name} must be a number, got {value!r}"
    if not rule.low <= value <= rule.high:
        return f"{name} must be between {rule.low:g} and {rule.high:g}, got {value!r}"
    return None


def damaged_weights(folder: Path) -> str | None:
    """What is wrong with the weights file where HDF5 itself cannot open it (a cut-short
    download or copy; Keras then fails with an internal error), else None."""
    weights = folder / "model.weights.h5"
    try:
        import h5py

        with h5py.File(weights, "r"):
            return None
    except ImportError:
        return None
    except Exception:
        return f"model.weights.h5 is damaged or truncated ({weights.stat().st_size:,} bytes, not an HDF5 file that can be read)"


def load_model_folder(folder: str | Path, source: str | None = None, revision: str | None = None) -> NucleiModel:
    """Verifies and loads a model folder (``safe_mode=True``, no compile)."""
    from .quiet import import_keras

    keras = import_keras()  # deferred: TensorFlow takes seconds to import

    folder = Path(folder)
    label = source or str(folder)
    metadata = verify_folder(folder, label)
    try:
        keras_model = keras.saving.load_model(folder, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for corrupt files; all mean "unusable"
        damaged = damaged_weights(folder)
        if damaged:
            raise ModelLoadError(f"{label}: the Keras files could not be loaded: {damaged}. Copy or download the "
                                 "model folder again.") from None
        raise ModelLoadError(f"{label}: the Keras files could not be loaded ({type(error).__name__}: {error}).") from None
    expected = len(metadata["outputs"])
    if keras_model.output_shape[-1] != expected:
        raise ModelLoadError(f"{label}: the network has {keras_model.output_shape[-1]} outputs, "
                             f"{METADATA_FILE} describes {expected}.")
    return NucleiModel(keras_model, metadata, folder, source=label, revision=revision)
