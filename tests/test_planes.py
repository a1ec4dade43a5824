"""Choosing a Z-stack's plane: by number, the sharpest, or their maximum projection."""
import numpy as np
import pytest
from scipy import ndimage

from nuclei_app.planes import FOCUS, MAX, PlaneRequest, parse_z_plane, read_planes, resolve, sharpest_plane

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


def choose_plane(stack: np.ndarray, request: PlaneRequest) -> tuple[np.ndarray, str]:
    """(Z, Y, X, C) -> the plane chosen and its note, as the readers do."""
    planes, note = resolve(request, len(stack), lambda z: stack[z])
    return read_planes(lambda z: stack[z], planes), note


@pytest.mark.parametrize("sigmas, sharp", [((4, 2, 0, 2, 4), 2), ((0, 1, 3), 0), ((5, 3, 1.5), 2)])
def test_the_sharpest_plane_is_the_least_blurred(sigmas, sharp):
    stack = focus_series(sigmas)[..., None]
    assert sharpest_plane(len(stack), lambda z: stack[z], "auto") == (sharp, 0, 1)


def test_choose_plane_by_number_focus_and_projection_and_says_which():
    stack = focus_series()[..., None]   # (Z, Y, X, C)
    original = stack.copy()
    plane, note = choose_plane(stack, PlaneRequest(1))
    assert np.array_equal(plane, stack[1]) and note == "a stack of 5 Z planes: plane 1 is segmented"
    plane, note = choose_plane(stack, PlaneRequest(FOCUS))
    assert np.array_equal(plane, stack[2]) and note == "a stack of 5 Z planes: plane 2, the sharpest, is segmented"
    plane, note = choose_plane(stack, PlaneRequest(MAX))
    assert np.array_equal(plane, stack.max(axis=0)) and "maximum-intensity projection" in note
    assert np.array_equal(stack, original)   # the running maximum never writes into the reader's planes
    with pytest.raises(ValueError, match=r"the stack has 5 Z planes \(0 to 4\): --z-plane 5 is past the last"):
        choose_plane(stack, PlaneRequest(5))


def test_the_sharpest_plane_is_judged_on_the_channel_segmented():
    """User test: nuclei sharp in plane 2 of channel 0, a bright speckle channel sharp in plane
    4: the nuclei's plane, found (auto) or asked (--channel 0); --channel 1 asks the other."""
    nuclei = focus_series((4, 2, 0, 2, 4)).astype(np.float32)
    rng = np.random.default_rng(0)
    speckle = rng.random((96, 96)) ** 8 * 255
    speckles = np.stack([ndimage.gaussian_filter(speckle, sigma) for sigma in (6, 5, 4, 2, 0)])
    stack = np.stack([nuclei, speckles], axis=-1).astype(np.uint8)
    assert choose_plane(stack, PlaneRequest(FOCUS))[1] == \
        "a stack of 5 Z planes: plane 2, the sharpest (judged on channel 0), is segmented"
    assert "plane 2, the sharpest (judged on channel 0)" in choose_plane(stack, PlaneRequest(FOCUS, 0))[1]
    assert "plane 4, the sharpest (judged on channel 1)" in choose_plane(stack, PlaneRequest(FOCUS, 1))[1]
    assert "the sharpest (judged on all channels)" in choose_plane(stack, PlaneRequest(FOCUS, "all"))[1]
