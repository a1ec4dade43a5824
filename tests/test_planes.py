"""Choosing a Z-stack's plane: by number, the sharpest, or their maximum projection."""
import numpy as np
import pytest
from scipy import ndimage

from nuclei_app.imageio import ImageReadError
from nuclei_app.planes import FOCUS, MAX, PlaneRequest, choose_plane, parse_z_plane, sharpest

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
    stack = focus_series()[..., None]   # (Z, Y, X, C)
    plane, note = choose_plane(stack, PlaneRequest(1), "s.tif")
    assert np.array_equal(plane, stack[1]) and note == "a stack of 5 Z planes: plane 1 is segmented"
    plane, note = choose_plane(stack, PlaneRequest(FOCUS), "s.tif")
    assert np.array_equal(plane, stack[2]) and note == "a stack of 5 Z planes: plane 2, the sharpest, is segmented"
    plane, note = choose_plane(stack, PlaneRequest(MAX), "s.tif")
    assert np.array_equal(plane, stack.max(axis=0)) and "maximum-intensity projection" in note
    with pytest.raises(ImageReadError, match=r"s.tif: plane 5 was asked \(--z-plane 5\), past its last: it has 5 Z "
                                             r"planes \(0 to 4\)"):
        choose_plane(stack, PlaneRequest(5), "s.tif")


def test_the_sharpest_plane_is_judged_on_the_channel_segmented():
    """User test: nuclei sharp in plane 2 of channel 0, a bright speckle channel sharp in plane
    4: the nuclei's plane, found (auto) or asked (--channel 0); --channel 1 asks the other."""
    nuclei = focus_series((4, 2, 0, 2, 4)).astype(np.float32)
    rng = np.random.default_rng(0)
    speckle = rng.random((96, 96)) ** 8 * 255
    speckles = np.stack([ndimage.gaussian_filter(speckle, sigma) for sigma in (6, 5, 4, 2, 0)])
    stack = np.stack([nuclei, speckles], axis=-1).astype(np.uint8)
    assert choose_plane(stack, PlaneRequest(FOCUS), "s.tif")[1] == \
        "a stack of 5 Z planes: plane 2, the sharpest (judged on channel 0), is segmented"
    assert "plane 2, the sharpest (judged on channel 0)" in choose_plane(stack, PlaneRequest(FOCUS, 0), "s.tif")[1]
    assert "plane 4, the sharpest (judged on channel 1)" in choose_plane(stack, PlaneRequest(FOCUS, 1), "s.tif")[1]
