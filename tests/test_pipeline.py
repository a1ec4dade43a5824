from pathlib import Path

import numpy as np
import pytest

from nuclei_app.canvas import Box
from nuclei_app.imageio import read_image
from nuclei_app.pipeline import inference_for, segment, settings_for

from .conftest import SAMPLES, jpeg, on_canvas
from .test_scale import disks_image


def test_settings_default_to_the_model_and_accept_overrides(tiny_model):
    assert settings_for(tiny_model) == tiny_model.postprocess_settings
    changed = settings_for(tiny_model, threshold=0.3, min_size=50)
    assert (changed.threshold, changed.min_size) == (0.3, 50)
    assert changed.min_size_in_image_pixels and not settings_for(tiny_model).min_size_in_image_pixels
    assert "min_size_in_image_pixels" not in changed.model_values()   # never written to a model folder
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


def test_outputs_come_back_at_the_input_size_whatever_the_scale(tiny_model):
    image = read_image(SAMPLES / "images" / "brightfield.png")[:123, :77]
    for diameter in (4.0, 16.0, 60.0):
        result = segment(tiny_model, image, diameter=diameter)
        assert result.labels.shape == (123, 77) and result.probabilities.shape == (123, 77, 2)
        assert result.prediction.diameter == diameter and result.prediction.diameter_source == "given"
        assert abs(result.prediction.factor - tiny_model.diameter / diameter) < 1e-9


def test_a_folder_without_a_diameter_still_loads_and_runs_at_scale_1(tiny_model_dir, tmp_path):
    import json
    import shutil

    from nuclei_app.model import load_model_folder

    old = tmp_path / "old"
    shutil.copytree(tiny_model_dir, old)
    metadata = json.loads((old / "nuclei.json").read_text())
    del metadata["scale"]
    (old / "nuclei.json").write_text(json.dumps(metadata))
    model = load_model_folder(old)
    assert model.diameter is None
    result = segment(model, read_image(SAMPLES / "images" / "brightfield.png"), diameter=40.0)
    assert result.prediction.factor == 1.0 and result.prediction.diameter_source == "none"


def test_a_channel_the_image_lacks_is_a_clear_error(tiny_model):
    with pytest.raises(ValueError, match="has 3 channels"):
        segment(tiny_model, read_image(SAMPLES / "images" / "brightfield.png"), channel=3)


def test_80px_disks_at_diameter_80_give_one_label_per_disk(bundled_model):
    image, truth = disks_image(80, shape=(720, 720), spacing=2.0)
    result = segment(bundled_model, image, diameter=80)
    assert result.count == truth.max()
    # Each disk is one label that covers it.
    for index in range(1, truth.max() + 1):
        found = np.unique(result.labels[truth == index])
        assert len(found[found > 0]) == 1


@pytest.mark.parametrize("diameter", [12, 30, 80])
def test_automatic_diameter_of_synthetic_disks_within_15_percent(bundled_model, diameter):
    image, truth = disks_image(diameter, shape=(max(384, diameter * 9),) * 2)
    result = segment(bundled_model, image)
    assert result.prediction.diameter_source in ("estimated", "measured")
    # Within 15 % of the true diameter, as the issue states it (a log ratio, used before, allowed
    # only -13 % below: the model bundled since 2026-12-08 estimates 30 px disks at 26.0, -13.4 %).
    assert abs(result.prediction.diameter / diameter - 1) < 0.15, result.prediction


@pytest.mark.parametrize("shape", [(16, 3000), (3000, 16), (5, 2000), (2, 2)])
def test_thin_strips_are_segmented_at_their_own_size(tiny_model, shape):
    image = np.random.default_rng(0).random(shape + (3,)).astype(np.float32)
    for diameter in (None, 16.0):
        assert segment(tiny_model, image, diameter=diameter).labels.shape == shape


def test_flips_by_default_on_light_backgrounds_only(bundled_model, monkeypatch):
    """tta None: the model's default, flip TTA for brightfield and H&E (inverted, light
    background), one pass for fluorescence; an explicit choice always wins."""
    from nuclei_app import inference
    from nuclei_app.pipeline import network_input, predict

    assert inference_for(bundled_model, None, light=True).tta is True
    assert inference_for(bundled_model, None, light=False).tta is False
    assert inference_for(bundled_model, False, light=True).tta is False
    passes = {}
    real = inference.flip_variants

    def counted(tta):
        passes.setdefault(name, []).append(len(real(tta)))
        return real(tta)
    monkeypatch.setattr(inference, "flip_variants", counted)
    for name, light in (("tissue_he", True), ("brightfield", True), ("fluorescence_sparse", False)):
        image = read_image(SAMPLES / "images" / f"{name}.png")
        assert network_input(bundled_model, image).light is light
        predict(bundled_model, image, diameter=20.0)
        assert set(passes[name]) == ({4} if light else {1}), (name, passes[name])
    name = "tissue_he, tta off"
    predict(bundled_model, read_image(SAMPLES / "images" / "tissue_he.png"), tta=False, diameter=20.0)
    assert set(passes[name]) == {1}


def test_a_given_minimum_size_counts_the_image_s_pixels_the_tuned_one_the_model_s(bundled_model):
    """Disks of 40 px segmented at their diameter: the network sees them at 16 px, so the
    tuned minimum (at that scale) grows 6.25x in the image's pixels; a given one does not."""
    from nuclei_app.pipeline import labels_for, predict, scaled_settings

    image, _ = disks_image(40, shape=(256, 256))
    prediction = predict(bundled_model, image, diameter=40.0)
    tuned = bundled_model.postprocess_settings
    assert scaled_settings(tuned, prediction).min_size == round(tuned.min_size * 6.25)
    given = settings_for(bundled_model, min_size=1000)
    assert scaled_settings(given, prediction).min_size == 1000
    areas = np.bincount(labels_for(bundled_model, prediction, given).ravel())[1:]
    assert areas.size and areas.min() >= 1000          # 40 px disks: ~1257 px each


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("name", ["brightfield", "tissue_he", "fluorescence_dense"])
def test_a_field_pasted_onto_a_blank_canvas_is_segmented_as_alone(bundled_model, name, fill):
    """A user test pasted a brightfield field into a corner of a white canvas and got 130 px
    nuclei (26 found against 60 alone); an H&E field on black, none. The field is now
    segmented as if alone and the canvas holds no nuclei."""
    field = read_image(SAMPLES / "images" / f"{name}.png")
    alone = segment(bundled_model, field)
    canvas = on_canvas(field, (2 * field.shape[0], 2 * field.shape[1]), (field.shape[0] // 2, 0), fill)
    pasted = segment(bundled_model, canvas)
    assert pasted.prediction.diameter == alone.prediction.diameter
    assert pasted.prediction.channel == alone.prediction.channel
    np.testing.assert_array_equal(pasted.labels[field.shape[0] // 2:field.shape[0] // 2 + field.shape[0],
                                                 :field.shape[1]], alone.labels)
    assert pasted.count == alone.count
    assert pasted.prediction.field == Box(field.shape[0] // 2, field.shape[0] // 2 + field.shape[0], 0, field.shape[1])
    assert alone.prediction.field is None


def test_a_scale_bar_on_the_canvas_holds_no_nucleus_and_leaves_the_field_as_alone(bundled_model):
    """A user test: an H&E field on black with a white scale bar below it gave 7 nuclei at
    104 px on channel 1 (the bar made the field's box a third canvas); 75 alone."""
    field = read_image(SAMPLES / "images" / "tissue_he.png")
    alone = segment(bundled_model, field)
    height, width = field.shape[:2]
    figure = np.zeros((height + 120, width + 60, 3), np.float32)
    figure[30:30 + height, 30:30 + width] = field
    figure[height + 70:height + 76, width - 100:width] = 1.0      # the bar
    pasted = segment(bundled_model, figure)
    np.testing.assert_array_equal(pasted.labels[30:30 + height, 30:30 + width], alone.labels)
    assert pasted.count == alone.count and pasted.prediction.channel == alone.prediction.channel


def test_a_frame_around_a_field_on_a_canvas_is_left_out(bundled_model):
    """A user test: a brightfield field with a 2 px black frame on white was segmented at 7 px."""
    field = read_image(SAMPLES / "images" / "brightfield.png")
    alone = segment(bundled_model, field)
    height, width = field.shape[:2]
    figure = np.ones((height + 100, width + 100, 3), np.float32)
    figure[48:52 + height, 48:52 + width] = 0.0
    figure[50:50 + height, 50:50 + width] = field
    framed = segment(bundled_model, figure)
    np.testing.assert_array_equal(framed.labels[50:50 + height, 50:50 + width], alone.labels)
    assert framed.count == alone.count and framed.prediction.diameter == alone.prediction.diameter


def test_a_field_on_a_jpeg_canvas_is_segmented_near_as_alone(bundled_model):
    """The JPEG's halo around the field stays on the canvas: no strips of "nuclei" along it, and
    the field's scale (a user test: 52 nuclei at 29.4 px against 73 at 23.6 alone)."""
    field = read_image(SAMPLES / "images" / "tissue_he.png")
    canvas = on_canvas(field, (700, 900), (203, 301), 0.0)
    alone, exported = segment(bundled_model, jpeg(field, 90)), segment(bundled_model, jpeg(canvas, 90))
    assert abs(exported.prediction.diameter / alone.prediction.diameter - 1) < 0.1
    assert abs(exported.count - alone.count) <= 0.1 * alone.count
    outside = exported.labels.copy()
    outside[198:208 + field.shape[0], 296:306 + field.shape[1]] = 0
    assert not outside.any()


def test_a_refined_pass_that_finds_nothing_leaves_the_first_pass_standing(bundled_model):
    # Three rows of DSB2018 image 07fb37aafa66 (CC0), tiled to 2000 px: the first pass finds
    # a few cut objects of ~3 px. With the model bundled until 2026-12-08 they vanished when
    # segmented at 3 px (the first pass stood, "estimated"); the one bundled since finds 3 there
    # ("measured"). Either way never an empty result said to be measured, whole or block-wise.
    from nuclei_app.blocks import segment_array_in_blocks
    from nuclei_app.pipeline import refined_stands

    assert not refined_stands(0, 4) and refined_stands(3, 4) and refined_stands(0, 0)
    strip = read_image(Path(__file__).parent / "data" / "strip_3x2000.png")
    result = segment(bundled_model, strip)
    assert result.count > 0 and result.prediction.diameter_source in ("estimated", "measured")
    blocks = segment_array_in_blocks(bundled_model, strip, block_size=256)   # --block-size: the same rule
    assert blocks.count > 0 and blocks.diameter_source == result.prediction.diameter_source
