"""Choosing a Z-stack's plane: by number, the sharpest, or their maximum projection."""
import numpy as np
import pytest
from scipy import ndimage

from nuclei_app.imageio import ImageReadError
from nuclei_app.planes import FOCUS, MAX, choose_plane, parse_z_plane, sharpest

from .conftest import fluorescence_like, synthetic_labels


def focus_series(sigmas=(4, 2, 0, 2, 4)) -> np.ndarray:
    """One field at several defocus blurs (Z first): the unblurred plane is the sharp one."""
    field = fluorescence_like(synthetic_labels((96, 96), seed=3, count=8), seed=3).astype(np.float32)
    return np.stack([ndimage.gaussian_filter(field, sigma) for sigma in sigmas]).astype(np.uint8)


@pytest.mark.parametrize("text, value", [("0", 0), ("12", 12), ("max", MAX), ("FOCUS", FOCUS), (" max ", MAX)])
def test_parse_accepts_a_number_focus_or_max(text, value):
    assert parse_z_plane(text) == value


@pytest.mark.parametrize("text", ["-1", "best", "1.5", ""])
def test_parse_refuses_anything_else_with_what_is_accepted(text):
    with pytest.raises(ValueError, match="plane number from 0, 'focus' .* or 'max'"):
        parse_z_plane(text)


@pytest.mark.parametrize("sigmas, sharp", [((4, 2, 0, 2, 4), 2), ((0, 1, 3), 0), ((5, 3, 1.5), 2)])
def test_the_sharpest_plane_is_the_least_blurred(sigmas, sharp):
    assert sharpest(focus_series(sigmas)) == sharp


def test_choose_plane_by_number_focus_and_projection_and_says_which():
    stack = focus_series()
    plane, note = choose_plane(stack, 1, "s.tif")
    assert np.array_equal(plane, stack[1]) and note == "a stack of 5 Z planes: plane 1 is segmented"
    plane, note = choose_plane(stack, FOCUS, "s.tif")
    assert np.array_equal(plane, stack[2]) and note == "a stack of 5 Z planes: plane 2, the sharpest, is segmented"
    plane, note = choose_plane(stack, MAX, "s.tif")
    assert np.array_equal(plane, stack.max(axis=0)) and "maximum-intensity projection" in note
    with pytest.raises(ImageReadError, match=r"s.tif: --z-plane 5 is past its last plane: it has 5 Z planes \(0 to 4\)"):
        choose_plane(stack, 5, "s.tif")
