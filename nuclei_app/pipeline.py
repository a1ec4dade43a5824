"""One call from an image to its nuclei, shared by the CLI, the app and ``train.evaluate``.

image (H, W, C) -> nuclear channel -> ``preprocess`` -> rescale to the model's nucleus
diameter -> tiled network -> probabilities resized back to the input's size -> watershed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import numpy as np

from .canvas import Box, content_box, crop
from .channels import AUTO, as_channels, check_channel, choose_channel_in, network_rgb
from .config import InferenceSettings, PostprocessSettings
from .inference import ProgressCallback, predict_preprocessed, prepare_field
from .kinds import input_kind, network_light
from .model import NucleiModel
from .postprocess import instance_labels
from .scale import estimate_diameter, median_diameter, rescale_image, resize_image, scale_factor
from .size_search import checked_estimate, fallback_diameter

# Automatic diameter: when the nuclei found at the estimated scale measure more than this
# factor away from the estimate, the image is segmented once more at the measured diameter.
# The nuclei found measure the diameter better than the network-free estimate (median error
# 4.5 % vs 8 % on the validation split); at 15 % about one image in five takes a second pass.
REFINE_TOLERANCE = 1.15
# The network's input is capped at this many pixels (about 250 MB of float32 RGB): tiny
# nuclei in a large image are enlarged only as far as memory allows.
MAX_NETWORK_PIXELS = 16_000_000


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray   # (H, W, C) float32 at the input's size; channel 0 is the nucleus body
    diameter: float | None      # nucleus diameter (px of the input) the image was segmented at
    # "given", "estimated", "measured" (refined), "model" (the model's own: a field with hardly
    # any contrast above its noise, nothing to estimate from) or "none" (no scale in the model)
    diameter_source: str
    channel: int | str          # the channel the network saw, or "all" (the image's colours)
    factor: float = 1.0         # how much the image was resized for the network
    canonical_diameter: float | None = None
    field: Box | None = None    # the field of view segmented, on a blank canvas (canvas.content_box)
    kind: str = ""              # what the image looks like (kinds.input_kind); "" where not known
    quiet: bool = False         # hardly any contrast above the noise (inference.Stretch.quiet)


@dataclass(frozen=True)
class Segmentation:
    prediction: Prediction
    labels: np.ndarray         # (H, W) int32; 0 background, 1..N nuclei

    @property
    def probabilities(self) -> np.ndarray:
        return self.prediction.probabilities

    @property
    def count(self) -> int:
        return int(self.labels.max(initial=0))


def settings_for(model: NucleiModel, threshold: float | None = None, min_size: int | None = None,
                 marker_threshold: float | None = None) -> PostprocessSettings:
    """The model's tuned settings, with any value the caller gives taking precedence; a
    ``min_size`` given counts the image's own pixels."""
    overrides = {k: v for k, v in dict(threshold=threshold, min_size=min_size,
                                        marker_threshold=marker_threshold).items() if v is not None}
    if min_size is not None:
        overrides["min_size_in_image_pixels"] = True
    return replace(model.postprocess_settings, **overrides)


def inference_for(model: NucleiModel, tta: bool | None = None, light: bool = False) -> InferenceSettings:
    """The model's inference settings; ``tta`` None: the model's default, flips on for a light
    background (``light``) where the model asks for it (``tta_light``)."""
    settings = model.inference_settings
    if tta is None:
        tta = settings.tta or (settings.tta_light and light)
    return replace(settings, tta=tta)


class NetworkInput(NamedTuple):
    image: np.ndarray       # preprocessed RGB, as the network sees it
    channel: int | str      # the channel used
    light: bool             # a light background (inverted): brightfield, H&E
    estimate: float | None = None  # estimate_diameter(image), where asked for
    field: Box | None = None  # the field of view inside a blank canvas (canvas.content_box)
    kind: str = ""            # what the image looks like (kinds.input_kind)
    quiet: bool = False       # its stretch was the noise floor's (inference.Stretch.quiet)

    @property
    def field_image(self) -> np.ndarray:
        """``image`` inside ``field``: what the automatic diameter looks at."""
        return crop(self.image, self.field)


def network_input(model: NucleiModel, image: np.ndarray, channel: int | str = AUTO,
                  with_estimate: bool = False) -> NetworkInput:
    """What the network sees, and how it came about; ``with_estimate``: also the network-free
    diameter estimate (models that record a diameter). Pure numpy, no turn on the model
    needed: the batch prepares the next image in another thread while this one runs."""
    image = as_channels(image)
    box = content_box(image)  # on every channel, as overview.survey finds it
    chosen = choose_channel_in(image, box) if channel == AUTO else channel
    check_channel(image, chosen)
    prepared, stretch = prepare_field(network_rgb(image, chosen), box, model.normalisation)
    kind = input_kind(image, chosen, network_light(stretch, model.normalisation))
    network = NetworkInput(prepared, chosen, stretch.invert, None, box, kind, stretch.quiet)
    if with_estimate and model.diameter is not None and not network.quiet:  # quiet: quiet_field_start
        return network._replace(estimate=estimate_diameter(network.field_image))
    return network


def predict(model: NucleiModel, image: np.ndarray, tta: bool | None = None,
            progress: ProgressCallback | None = None, diameter: float | None = None,
            channel: int | str = AUTO, on_wait: Callable[[], None] | None = None) -> Prediction:
    """Probabilities at the input's size, with the image segmented at its nuclei's scale.

    ``diameter``: the nuclei's diameter in px; None estimates it (models that record the
    diameter they were trained at; older models run at the image's own scale). The estimate is
    checked against the nuclei found with the model's tuned settings (not the caller's, so
    that moving a threshold never changes the scale). The image is segmented in its turn on
    the shared model (``NucleiModel.in_turn``); ``on_wait`` is called if it has to wait."""
    with model.in_turn(on_wait):
        return _predict(model, image, tta, progress, diameter, channel)[0]


def _predict(model, image, tta, progress, diameter, channel, prepared=None) -> tuple[Prediction, np.ndarray | None]:
    """(prediction, its labels with the model's tuned settings where the diameter check
    already computed them, else None). ``prepared``: ``network_input``'s result, if done."""
    if diameter is not None and not (math.isfinite(diameter) and diameter > 0):
        raise ValueError(f"diameter must be a positive number of pixels, got {diameter}.")
    network = prepared or network_input(model, image, channel)
    prediction, labels = _predict_input(model, network, tta, progress, diameter)
    return replace(prediction, kind=network.kind, quiet=network.quiet), labels


def _predict_input(model, network: NetworkInput, tta, progress, diameter) -> tuple[Prediction, np.ndarray | None]:
    """``_predict`` for the network's input: at the diameter given, or estimated, checked and
    where the nuclei found measure otherwise, refined."""
    if network.field is not None:
        return _predict_field(model, network, tta, progress, diameter)
    prepared, chosen, estimate = network.image, network.channel, network.estimate
    tta = inference_for(model, tta, network.light).tta
    if model.diameter is None:
        probabilities = _predict_at(model, prepared, 1.0, tta, progress)
        return Prediction(probabilities, None, "none", chosen), None
    if diameter is not None:
        return _predict_for_diameter(model, prepared, diameter, "given", chosen, tta, progress), None
    probed: dict = {}
    if network.quiet:
        estimate, source = quiet_field_start(model), "model"
    else:
        estimate = checked_estimate(model, prepared, estimate if estimate is not None else estimate_diameter(prepared),
                                    probed)
        source = "estimated"
    first = _predict_for_diameter(model, prepared, estimate, source, chosen, tta, progress)
    labels = labels_for(model, first)
    measured = median_diameter(labels) or fallback_diameter(probed)
    if measured and abs(math.log(measured / first.diameter)) > math.log(REFINE_TOLERANCE):
        refined = _predict_for_diameter(model, prepared, measured, "measured", chosen, tta, progress)
        refined_labels = labels_for(model, refined)
        if refined_stands(int(refined_labels.max(initial=0)), int(labels.max(initial=0))):
            return refined, refined_labels
    return first, labels


def quiet_field_start(model: NucleiModel) -> float:
    """The diameter a field with hardly any contrast above its noise (``Stretch.quiet``) is
    first segmented at: the model's own. The blob estimator measures the noise there (every
    empty field came out at 5.2 px, its smallest size, and was enlarged 3x), and a sparse
    well's one or two nuclei were then missed; the nuclei found at the model's scale
    measure the diameter for the second pass, as everywhere. Reported as the model's (an
    empty field said "16 px (estimated)", a size it never measured)."""
    return float(model.diameter)


def refined_stands(refined_count: int, first_count: int) -> bool:
    """Whether the pass at the measured diameter replaces the first, given the nuclei each
    found. Objects that vanish when segmented at their own size were not nuclei of that size
    (a 3 px strip's cut edges: 4 objects of 3.4 px, none at 3.4 px): an empty refined pass
    leaves the first standing, not an empty result said to be measured on what it found."""
    return refined_count > 0 or first_count == 0


def _predict_field(model, network: NetworkInput, tta, progress, diameter) -> tuple[Prediction, np.ndarray | None]:
    """An image pasted onto a blank canvas: its field of view segmented as if alone (the
    network sees the field's own edges, mirrored, not the canvas), nothing on the canvas."""
    field = network.field
    prediction, labels = _predict_input(model, network._replace(image=network.field_image, field=None), tta,
                                        progress, diameter)
    return (replace(prediction, probabilities=_on_canvas(prediction.probabilities, field, network.image.shape),
                    field=field),
            None if labels is None else _on_canvas(labels, field, network.image.shape))


def _on_canvas(array: np.ndarray, field: Box, shape: tuple[int, ...]) -> np.ndarray:
    canvas = np.zeros(shape[:2] + array.shape[2:], array.dtype)
    canvas[field.slices] = array
    return canvas


def _predict_for_diameter(model, prepared, diameter, source, chosen, tta, progress) -> Prediction:
    factor = capped_factor(prepared.shape, scale_factor(diameter, model.diameter))
    probabilities = _predict_at(model, prepared, factor, tta, progress)
    return Prediction(probabilities, float(diameter), source, chosen, factor, model.diameter)


def capped_factor(shape: tuple[int, ...], factor: float) -> float:
    pixels = shape[0] * shape[1] * factor * factor
    if pixels > MAX_NETWORK_PIXELS:
        factor *= math.sqrt(MAX_NETWORK_PIXELS / pixels)
    return factor


def _predict_at(model, prepared: np.ndarray, factor: float, tta, progress) -> np.ndarray:
    scaled = rescale_image(prepared, factor)
    probabilities = predict_preprocessed(model, scaled, inference_for(model, tta), model.size_multiple, progress)
    if probabilities.shape[:2] != prepared.shape[:2]:
        probabilities = resize_image(probabilities, prepared.shape[:2])
    return probabilities


def scaled_settings(settings: PostprocessSettings, prediction: Prediction) -> PostprocessSettings:
    """The model's tuned ``min_size`` is in pixels at the model's nucleus diameter: an image
    segmented at a larger diameter has proportionally larger nuclei, and noise specks, in its
    own pixels. A user's value already counts the image's pixels."""
    if prediction.factor == 1.0 or settings.min_size_in_image_pixels:
        return settings
    return replace(settings, min_size=max(1, int(round(settings.min_size / prediction.factor ** 2))))


def labels_for(model: NucleiModel, prediction: Prediction, settings: PostprocessSettings | None = None) -> np.ndarray:
    return instance_labels(prediction.probabilities, scaled_settings(settings or model.postprocess_settings, prediction))


def segment(model: NucleiModel, image: np.ndarray, postprocess: PostprocessSettings | None = None,
            tta: bool | None = None, progress: ProgressCallback | None = None, diameter: float | None = None,
            channel: int | str = AUTO) -> Segmentation:
    settings = postprocess or model.postprocess_settings
    prediction, tuned_labels = predict_labels(model, image, tta, progress, diameter, channel)
    return Segmentation(prediction, final_labels(model, prediction, tuned_labels, settings))


def predict_labels(model: NucleiModel, image: np.ndarray | None, tta: bool | None = None,
                   progress: ProgressCallback | None = None, diameter: float | None = None,
                   channel: int | str = AUTO, prepared: NetworkInput | None = None
                   ) -> tuple[Prediction, np.ndarray | None]:
    """``segment``'s first half, in its turn on the model: the prediction, and the labels with
    the model's tuned settings where the automatic diameter already needed them (else None)."""
    with model.in_turn():
        return _predict(model, image, tta, progress, diameter, channel, prepared)


def final_labels(model: NucleiModel, prediction: Prediction, tuned_labels: np.ndarray | None,
                 settings: PostprocessSettings) -> np.ndarray:
    """``segment``'s second half (no turn on the model needed): the watershed, unless done."""
    if tuned_labels is None or settings != model.postprocess_settings:
        tuned_labels = labels_for(model, prediction, settings)
    return tuned_labels

