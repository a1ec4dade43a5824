import numpy as np
import pytest

from skimage.segmentation import find_boundaries

from nuclei_app.imageio import read_image
from nuclei_app.overlay import (DARK_PALETTE, LIGHT_PALETTE, comparison_overlay, draw_overlay, inner_boundaries,
                                label_colours, outline_width, palette_for)

from .conftest import SAMPLES, on_canvas


def labels_and_image(light=False):
    """A dark (fluorescence-like) or light (brightfield-like) field with one square nucleus."""
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 5:15] = 1
    image = np.linspace(0, 0.2, 20 * 20 * 3, dtype=np.float32).reshape(20, 20, 3)
    image[labels > 0] += 0.6
    return labels, (1.0 - image if light else image)


def test_outlines_only_touch_the_boundary():
    labels, image = labels_and_image()
    overlay = draw_overlay(image, labels, style="outlines", opacity=1.0)
    assert np.allclose(overlay[5, 5], DARK_PALETTE.outline)        # boundary pixel
    assert not np.allclose(overlay[10, 10], DARK_PALETTE.outline)  # interior unchanged
    assert overlay.shape == image.shape and overlay.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int64])
def test_inner_boundaries_are_skimages_find_boundaries(dtype):
    """Touching labels, labels on the image's edge, strips and single pixels: the same
    pixels as skimage's definition the overlays were drawn with before."""
    rng = np.random.default_rng(3)
    for _ in range(100):
        height, width = rng.integers(1, 30, 2)
        labels = rng.integers(0, rng.integers(1, 6), (height, width)).astype(dtype)
        assert np.array_equal(inner_boundaries(labels), find_boundaries(labels, mode="inner"))
    blocks = np.kron(rng.integers(0, 40, (20, 20)), np.ones((7, 7), int)).astype(dtype)
    assert np.array_equal(inner_boundaries(blocks), find_boundaries(blocks, mode="inner"))


def test_light_backgrounds_get_colours_that_stand_out():
    labels, image = labels_and_image(light=True)
    assert palette_for(image) == LIGHT_PALETTE and palette_for(labels_and_image()[1]) == DARK_PALETTE
    overlay = draw_overlay(image, labels, style="outlines", opacity=1.0)
    assert np.allclose(overlay[5, 5], LIGHT_PALETTE.outline)
    truth = labels.copy()
    missed = comparison_overlay(image, truth, np.zeros_like(labels))
    assert np.allclose(missed[5, 5], LIGHT_PALETTE.missed) and LIGHT_PALETTE.names[2] == "yellow"
    assert LIGHT_PALETTE.missed != LIGHT_PALETTE.outline  # a caption's "missed" colour is no found nucleus's


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_a_field_on_a_blank_canvas_is_shown_as_alone(fill):
    """A user test: a fluorescence field on white was shown dim, with the light palette."""
    field = read_image(SAMPLES / "images" / "fluorescence_dense.png")
    labels = np.zeros(field.shape[:2], np.int32)
    labels[100:130, 200:230] = 1
    canvas = on_canvas(field, (field.shape[0] + 200, field.shape[1] + 300), (200, 300), fill)
    labels_on_canvas = np.pad(labels, ((200, 0), (300, 0)))
    np.testing.assert_array_equal(draw_overlay(canvas, labels_on_canvas)[200:, 300:], draw_overlay(field, labels))


def test_outline_colours_stay_bright_over_stained_nuclei():
    """Drawn at the page's default opacity over the H&E sample's nuclei, the light outline
    is clearly brighter than the nucleus under it (green came out a dark teal there); the
    missed-nucleus colour on a dark field is not the blue of a DAPI composite's nuclei."""
    from skimage.color import rgb2lab

    from nuclei_app.config import SAMPLES_DIR
    from nuclei_app.imageio import read_image
    from nuclei_app.overlay import to_display

    shown = to_display(read_image(SAMPLES_DIR / "images" / "tissue_he.png")).reshape(-1, 3)
    nucleus = np.median(shown[shown.max(axis=1) <= np.quantile(shown.max(axis=1), 0.05)], axis=0)
    lightness = lambda rgb: rgb2lab(np.asarray(rgb, np.float64)[None, None])[0, 0, 0]  # noqa: E731
    for colour in (LIGHT_PALETTE.outline, LIGHT_PALETTE.missed):
        blended = 0.4 * nucleus + 0.6 * np.array(colour)
        assert lightness(blended) - lightness(nucleus) > 25  # green: 18, cyan: 29, yellow: 31
    blue_nucleus = np.array([0.0, 0.1, 0.9])
    assert np.abs(np.array(DARK_PALETTE.missed) - blue_nucleus).max() > 0.5 and DARK_PALETTE.names[2] != "blue"


def test_outlines_widen_when_the_image_is_shown_smaller():
    labels = np.zeros((400, 400), np.int32)
    labels[100:300, 100:300] = 1
    image = np.zeros((400, 400, 3), np.float32)
    assert outline_width(labels.shape, None) == 1 and outline_width(labels.shape, 400) == 2
    thin = draw_overlay(image, labels, opacity=1.0)
    wide = draw_overlay(image, labels, opacity=1.0, display_side=100)  # shown at a quarter: 8 px
    drawn = lambda overlay: np.all(np.isclose(overlay, DARK_PALETTE.outline), axis=-1)  # noqa: E731
    assert drawn(wide).sum() > 6 * drawn(thin).sum() > 0
    assert not drawn(wide)[:100].any()  # never outside the nucleus


def test_a_strip_s_outlines_are_sized_for_the_part_shown_not_its_length():
    labels = np.zeros((20, 5000), np.int32)
    labels[4:16, 100:112] = 1
    assert outline_width(labels.shape, 700) == 1  # its first 160 px fill the column
    assert outline_width((5000, 5000), 700) == 14


def test_a_strip_s_window_opens_just_before_its_first_nucleus():
    from nuclei_app.overlay import strip_start

    labels = np.zeros((24, 5000), np.int32)
    assert strip_start(labels) == 0  # no nuclei
    labels[4:16, 1000:1012] = 1
    assert strip_start(labels) == 1000 - 24 and strip_start(labels.T) == 1000 - 24
    labels[:] = 0
    labels[4:16, 4990:4999] = 1
    assert strip_start(labels) == 5000 - 8 * 24  # the window still fits
    assert strip_start(np.pad(labels, ((0, 1000), (0, 0)))) == 0  # no strip


def test_contrast_stretch_can_be_turned_off():
    labels, image = labels_and_image()
    stored = draw_overlay(image, labels, style="filled", opacity=0.0, stretch=False)
    np.testing.assert_allclose(stored, image, atol=1e-6)
    assert not np.allclose(draw_overlay(image, labels, style="filled", opacity=0.0), image)


def test_filled_opacity_blends():
    labels, image = labels_and_image()
    none = draw_overlay(image, labels, style="filled", opacity=0.0)
    half = draw_overlay(image, labels, style="filled", opacity=0.5)
    assert np.allclose(none, half, atol=1e-6) is False
    assert np.allclose(none[0, 0], half[0, 0])  # background untouched


def test_instance_colours_are_stable_and_distinct():
    labels = np.arange(6).reshape(2, 3)
    colours = label_colours(labels)
    assert np.all(colours[0, 0] == 0)
    assert len({tuple(c) for c in colours.reshape(-1, 3)}) == 6
    assert np.array_equal(colours, label_colours(labels))


def test_unknown_style_is_refused():
    labels, image = labels_and_image()
    with pytest.raises(ValueError, match="unknown overlay style"):
        draw_overlay(image, labels, style="glow")


def test_comparison_colours_follow_the_matches():
    from nuclei_app.metrics import matched_ids

    truth = np.zeros((40, 40), np.int32)
    truth[2:12, 2:12] = 1     # found well
    truth[20:30, 20:30] = 2   # missed
    predicted = np.zeros_like(truth)
    predicted[2:12, 3:12] = 5     # IoU 0.9 with nucleus 1
    predicted[30:38, 2:10] = 6    # nothing there: a false positive
    assert [list(ids) for ids in matched_ids(truth, predicted)] == [[1], [5]]
    image = np.zeros((40, 40, 3), np.float32)
    overlay = comparison_overlay(image, truth, predicted)
    assert np.allclose(overlay[2, 5], DARK_PALETTE.match)
    assert np.allclose(overlay[30, 5], DARK_PALETTE.false_positive)
    assert np.allclose(overlay[20, 25], DARK_PALETTE.missed)
    assert np.allclose(overlay[6, 6], 0)  # insides untouched
