import numpy as np
import pytest

from nuclei_app.channelwise import channel_max, channel_mean, channel_min, planes_differ


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16])
def test_plane_by_plane_reductions_equal_numpys(channels, dtype):
    rng = np.random.default_rng(channels)
    image = (rng.random((37, 53, channels)) * (255 if dtype == np.uint8 else 1000 if dtype == np.uint16 else 1)).astype(dtype)
    np.testing.assert_array_equal(channel_max(image), image.max(axis=-1))
    np.testing.assert_array_equal(channel_min(image), image.min(axis=-1))
    np.testing.assert_allclose(channel_mean(image), image.mean(axis=-1), rtol=1e-6)
    assert channel_mean(image).dtype == image.mean(axis=-1).dtype


def test_planes_differ_finds_one_pixel_of_one_channel():
    image = np.zeros((20, 30, 3), np.float32)
    assert not planes_differ(image, 1e-3)
    image[7, 11, 2] = 0.01
    assert planes_differ(image, 1e-3)
    assert not planes_differ(image, 0.02)
    assert not planes_differ(image[..., :1], 1e-3)  # one channel: nothing to differ from
