import numpy as np
import pytest

from nuclei_app.overlay import OUTLINE_COLOUR, draw_overlay, label_colours


def labels_and_image():
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 5:15] = 1
    image = np.linspace(0, 1, 20 * 20 * 3, dtype=np.float32).reshape(20, 20, 3)
    return labels, image


def test_outlines_only_touch_the_boundary():
    labels, image = labels_and_image()
    overlay = draw_overlay(image, labels, style="outlines", opacity=1.0)
    assert np.allclose(overlay[5, 5], OUTLINE_COLOUR)        # boundary pixel
    assert not np.allclose(overlay[10, 10], OUTLINE_COLOUR)  # interior unchanged
    assert overlay.shape == image.shape and overlay.dtype == np.float32


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
