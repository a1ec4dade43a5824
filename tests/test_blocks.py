"""Huge images block by block: the whole image's decisions made once, and the network path
against ``pipeline.segment`` on the same image. (Reading by windows, stitching, the survey
and the label files have their own tests: test_block_sources, test_stitching, test_overview,
test_label_sinks, test_block_network.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
from PIL import Image

from benchmarks.huge_image import NucleusField, matched_iou, write_field_tiff
from nuclei_app import blocks, overview
from nuclei_app.blocks import segment_array_in_blocks, segment_in_blocks, spread
from nuclei_app.imageio import read_channels
from nuclei_app.pipeline import segment
from nuclei_app.scale import estimate_diameter
from nuclei_app.stitching import plan_blocks

from .conftest import SAMPLES, on_canvas


def test_the_scale_is_checked_on_blocks_spread_over_the_image():
    layout = plan_blocks(5000, 5000, 500, 50)  # 10 x 10
    checked, others = spread(layout, 16)
    assert len(checked) == 16 and len(others) == 84 and set(checked).isdisjoint(others)
    assert {b.top for b in checked} == {b.left for b in checked} == {0, 1500, 3000, 4500}
    strip = plan_blocks(500, 20000, 500, 50)  # one row of 40 blocks
    assert len(spread(strip, 16)[0]) == 16
    small = plan_blocks(1000, 1000, 500, 50)
    assert spread(small, 16) == (small, [])


@pytest.fixture(scope="module")
def field_tiff(tmp_path_factory):
    path = tmp_path_factory.mktemp("field") / "field.tif"
    return write_field_tiff(path, NucleusField(diameter=22.0), 1200, 1100, tile=256)


def test_block_wise_segmentation_of_a_tiff_matches_the_whole_image(bundled_model, field_tiff, tmp_path, monkeypatch):
    monkeypatch.setattr(overview, "OVERVIEW_SIDE", 500)  # so that the overlay is downsampled
    whole = segment(bundled_model, read_channels(field_tiff))
    result = segment_in_blocks(bundled_model, field_tiff, tmp_path, "field", block_size=400)
    # The scale found as the whole image's is: estimated on the same crop, checked on all nuclei.
    assert result.diameter_source == whole.prediction.diameter_source
    assert result.diameter == pytest.approx(whole.prediction.diameter, rel=1e-3)
    assert result.blocks == 9
    assert abs(result.count - whole.count) <= 0.005 * whole.count
    labels = tifffile.imread(result.files["labels"])
    matched, mean_iou = matched_iou(whole.labels, labels)
    assert matched >= 0.99 * whole.count and mean_iou >= 0.98
    # The files: a tiled 16-bit label TIFF with the table's ids, a downsampled overlay.
    with tifffile.TiffFile(result.files["labels"]) as tif:
        assert tif.pages.first.is_tiled and tif.pages.first.dtype == np.uint16
    assert np.array_equal(np.unique(labels)[1:], result.table["nucleus"].to_numpy())
    assert labels.shape == (1200, 1100) and result.count == labels.max()
    with Image.open(result.files["overlay"]) as overlay:
        assert overlay.size == (367, 400)  # every third pixel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["field_labels.tif", "field_overlay.png"]  # no scratch left


def test_block_wise_segmentation_in_memory_with_a_given_diameter(bundled_model):
    image = NucleusField(diameter=18.0, seed=5).render(0, 700, 0, 650).astype(np.float32)[..., None] / 255
    whole = segment(bundled_model, image, diameter=18.0)
    result = segment_array_in_blocks(bundled_model, image, diameter=18.0, block_size=256)
    assert result.diameter_source == "given" and result.labels.dtype == np.int32
    matched, mean_iou = matched_iou(whole.labels, result.labels)
    assert abs(result.count - whole.count) <= max(1, 0.005 * whole.count)
    assert mean_iou >= 0.98


def test_block_wise_diameter_is_estimated_where_the_nuclei_are(bundled_model, monkeypatch):
    # Nuclei in one corner only: the centre window (the estimator's 1024 px crop) is background.
    field = NucleusField(diameter=18.0, seed=3).render(0, 300, 0, 300).astype(np.float32) / 255
    image = np.zeros((1600, 1600), np.float32)
    image[:300, :300] = field
    seen = []

    def estimate(window):
        seen.append(window)
        return estimate_diameter(window)

    monkeypatch.setattr(blocks, "estimate_diameter", estimate)
    result = segment_array_in_blocks(bundled_model, image[..., None], block_size=1024)
    (window,) = seen
    bright = (window.mean(axis=-1) > 0.5).sum()
    assert window.shape[:2] == (300, 300) and bright > 0.2 * 300 * 300, bright   # the corner's field, its canvas left out
    assert abs(math.log(result.diameter / 18.0)) < math.log(1.3)


@pytest.mark.parametrize("arguments, message", [(dict(channel=3), "channel 3"), (dict(block_size=10), "block size"),
                                                (dict(diameter=-4.0), "diameter")])
def test_bad_arguments_are_refused_before_any_work(bundled_model, arguments, message, monkeypatch):
    monkeypatch.setattr(blocks, "survey", None)  # a pass over a huge image would come first otherwise
    with pytest.raises(ValueError, match=message):
        segment_array_in_blocks(bundled_model, np.zeros((100, 100, 2), np.float32), **arguments)


def test_a_block_wise_result_notes_an_automatic_diameter_under_what_the_model_resolves(bundled_model):
    """The note every route gives objects under the smallest diameter the model resolves
    (here dots of 2x2 px), carried by the result itself (batch, Dask and the app's large-image
    route read it from there); and an empty field's, which has no such objects any more."""
    rng = np.random.default_rng(0)
    dots = rng.random((96, 96)).astype(np.float32) * 0.02
    for dy in (2, 3):
        for dx in (2, 3):
            dots[dy::8, dx::8] = 0.5
    result = segment_array_in_blocks(bundled_model, dots, block_size=256)
    assert result.diameter < 4 and any("noise on an empty field" in note for note in result.notes), result.notes
    given = segment_array_in_blocks(bundled_model, dots, diameter=18.0, block_size=256)
    assert not any("empty field" in note for note in given.notes)
    noise = rng.random((96, 96)).astype(np.float32) * 0.15
    empty = segment_array_in_blocks(bundled_model, noise, block_size=256)
    assert empty.count == 0 and empty.notes[0].startswith("hardly any contrast above the image's noise"), empty.notes


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_a_light_field_on_a_canvas_is_segmented_block_wise_as_alone(bundled_model, tmp_path, fill):
    """Block by block, a brightfield field on black was read as fluorescence and segmented at
    the canvas's scale; now the blocks see the field as the whole image route does, and the
    blocks on the canvas alone hold no nuclei."""
    field = read_channels(SAMPLES / "images" / "brightfield.png")
    alone = segment(bundled_model, field)
    image = on_canvas(field, (1100, 900), (500, 300), fill)
    path = tmp_path / "canvas.tif"
    tifffile.imwrite(path, (image * 255).round().astype(np.uint8), tile=(256, 256), photometric="rgb")
    result = segment_in_blocks(bundled_model, path, tmp_path, "canvas", block_size=256)
    assert result.diameter == pytest.approx(alone.prediction.diameter, rel=1e-3)
    labels = tifffile.imread(result.files["labels"])
    inside = labels[500:500 + field.shape[0], 300:300 + field.shape[1]]
    assert labels.max() == inside.max() and abs(result.count - alone.count) <= 1
    matched, mean_iou = matched_iou(alone.labels, inside)
    assert matched >= alone.count - 1 and mean_iou >= 0.98
