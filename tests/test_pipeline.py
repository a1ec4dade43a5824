import numpy as np

from nuclei_app.imageio import read_image
from nuclei_app.pipeline import inference_for, segment, settings_for

from .conftest import SAMPLES


def test_settings_default_to_the_model_and_accept_overrides(tiny_model):
    assert settings_for(tiny_model) == tiny_model.postprocess_settings
    changed = settings_for(tiny_model, threshold=0.3, min_size=50)
    assert (changed.threshold, changed.min_size) == (0.3, 50)
    assert changed.marker_threshold == tiny_model.postprocess_settings.marker_threshold
    assert inference_for(tiny_model, tta=True).tta is True


def test_segment_returns_full_size_outputs(tiny_model):
    image = read_image(SAMPLES / "images" / "brightfield.png")
    result = segment(tiny_model, image)
    assert result.labels.shape == image.shape[:2] and result.labels.dtype == np.int32
    assert result.probabilities.shape == image.shape[:2] + (2,)
    assert result.count == result.labels.max()


def test_threshold_changes_the_count_on_the_bundled_model(bundled_model):
    image = read_image(SAMPLES / "images" / "fluorescence_dense.png")
    low = segment(bundled_model, image, settings_for(bundled_model, threshold=0.2)).labels
    high = segment(bundled_model, image, settings_for(bundled_model, threshold=0.95)).labels
    assert (low > 0).sum() > (high > 0).sum()
