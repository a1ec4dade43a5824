"""A block's network input: the whole image's stretch and the whole image's rescaling, so
that a block's probabilities are the whole image's away from its edges."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nuclei_app.block_network import NetworkGrid
from nuclei_app.config import Normalisation
from nuclei_app.inference import Stretch, percentile_sample, preprocess
from nuclei_app.sampling import percentile_stride
from nuclei_app.scale import rescale_image, resize_image


def test_the_fixed_stretch_is_preprocess_exactly():
    rng = np.random.default_rng(0)
    def blobs(shape):  # smooth, as a micrograph is (noise alone the stretch keeps dim); mostly low
        smooth = ndimage.gaussian_filter(rng.random(shape), (3, 3, 0))
        return ((smooth - smooth.min()) / np.ptp(smooth)) ** 4

    for image in ((0.3 * blobs((1200, 1800, 3))).astype(np.float32),       # dark: not inverted
                  (0.3 * blobs((600, 500, 3))).astype(np.float32),         # all of it the sample
                  (1.0 - 0.5 * blobs((900, 700, 3))).astype(np.float32)):  # light: inverted
        stride = percentile_stride(*image.shape[:2])
        stretch = Stretch.fit(image[::stride, ::stride], Normalisation())
        np.testing.assert_array_equal(stretch.apply(image), preprocess(image, Normalisation()))
    assert stretch.invert


@pytest.mark.parametrize("shape", [(100, 100), (1414, 1415), (2000, 2001), (20000, 20000), (7, 300000)])
def test_the_percentile_sample_is_inference_s(shape):
    stride = percentile_stride(*shape)
    view = np.broadcast_to(np.float32(0), shape + (3,))  # no memory: only the shape matters
    assert percentile_sample(view).shape[:2] == view[::stride, ::stride].shape[:2]


def test_the_network_grid_is_the_whole_image_s_rescaling():
    rng = np.random.default_rng(1)
    image = ndimage.gaussian_filter(rng.random((700, 900, 3)), (2, 2, 0)).astype(np.float32)

    def resized(array, shape):  # channel by channel: one anti-aliasing blur, as resize_image means
        return np.stack([resize_image(array[..., c], shape) for c in range(array.shape[-1])], axis=-1)

    for factor in (0.73, 1.0, 1.6):
        grid = NetworkGrid(700, 900, factor, multiple=16)
        whole = resized(image, grid.shape) if factor != 1.0 else image
        assert whole.shape[:2] == rescale_image(image, factor).shape[:2]
        window = (203, 611, 150, 777)
        part, (row, column) = grid.to_network(image[203:611, 150:777], window)
        assert row % 16 == 0 and column % 16 == 0  # the network's pooling phase is the whole image's
        inner = (slice(row + 40, row + part.shape[0] - 40), slice(column + 40, column + part.shape[1] - 40))
        np.testing.assert_allclose(part[40:-40, 40:-40], whole[inner], atol=1e-5)
        back = grid.from_network(whole[row:row + part.shape[0], column:column + part.shape[1]], (row, column), window)
        expected = resized(whole, (700, 900)) if factor != 1.0 else whole
        np.testing.assert_allclose(back[40:-40, 40:-40], expected[243:571, 190:737], atol=1e-5)
