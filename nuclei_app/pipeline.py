"""One call from an image to its nuclei, shared by the CLI and the app."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .config import InferenceSettings, PostprocessSettings
from .inference import ProgressCallback, predict_probabilities
from .model import NucleiModel
from .postprocess import instance_labels


@dataclass(frozen=True)
class Segmentation:
    probabilities: np.ndarray  # (H, W, C) float32; channel 0 is the nucleus body
    labels: np.ndarray         # (H, W) int32; 0 background, 1..N nuclei

    @property
    def count(self) -> int:
        return int(self.labels.max(initial=0))


def settings_for(model: NucleiModel, threshold: float | None = None, min_size: int | None = None,
                 marker_threshold: float | None = None) -> PostprocessSettings:
    """The model's tuned settings, with any value the caller gives taking precedence."""
    overrides = {k: v for k, v in dict(threshold=threshold, min_size=min_size,
                                        marker_threshold=marker_threshold).items() if v is not None}
    return replace(model.postprocess_settings, **overrides)


def inference_for(model: NucleiModel, tta: bool | None = None) -> InferenceSettings:
    settings = model.inference_settings
    return settings if tta is None else replace(settings, tta=tta)


def predict(model: NucleiModel, image: np.ndarray, tta: bool | None = None,
            progress: ProgressCallback | None = None) -> np.ndarray:
    return predict_probabilities(model, image, model.normalisation, inference_for(model, tta),
                                 multiple=model.size_multiple, progress=progress)


def segment(model: NucleiModel, image: np.ndarray, postprocess: PostprocessSettings | None = None,
            tta: bool | None = None, progress: ProgressCallback | None = None) -> Segmentation:
    probabilities = predict(model, image, tta, progress)
    labels = instance_labels(probabilities, postprocess or model.postprocess_settings)
    return Segmentation(probabilities, labels)
