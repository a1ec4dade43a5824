import math

import numpy as np
import pytest

from nuclei_app.scale import (ESTIMATOR_BIAS, centre_corner, content_corner, content_crop, estimate_diameter,
                              median_diameter, rescale_image, resize_image, resize_labels, scale_factor)

from .conftest import disk


def disks_image(diameter: float, shape=(512, 512), spacing: float = 1.8, seed: int = 0):
    """Bright disks of one diameter on a dark, slightly noisy background, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    step = int(diameter * spacing)
    index = 0
    for top in range(step // 2, shape[0] - step // 2, step):
        for left in range(step // 2, shape[1] - step // 2, step):
            jitter = rng.integers(-step // 8, step // 8 + 1, 2)
            index += 1
            labels[disk(shape, (top + jitter[0], left + jitter[1]), diameter / 2)] = index
    image = 0.05 + 0.8 * (labels > 0) + rng.normal(0, 0.03, shape)
    return np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=-1).astype(np.float32), labels


@pytest.mark.parametrize("diameter", [8, 16, 30, 60, 100])
def test_estimator_peak_finds_the_diameter_of_synthetic_disks_within_15_percent(diameter):
    """The scale-space peak itself; the shipped estimate divides it by ESTIMATOR_BIAS, fitted on
    real nuclei (whose clumps and texture push the peak up). The whole pipeline's diameter,
    checked by the network, is tested on disks in test_pipeline."""
    image, labels = disks_image(diameter, shape=(max(512, diameter * 8),) * 2)
    peak = estimate_diameter(image) * ESTIMATOR_BIAS
    assert abs(math.log(peak / diameter)) < math.log(1.15), (peak, diameter)


def test_estimator_follows_a_rescaled_image():
    image, _ = disks_image(20)
    small, large = estimate_diameter(rescale_image(image, 0.5)), estimate_diameter(rescale_image(image, 3.0))
    assert 0.85 < (large / small) / 6.0 < 1.15


def dark_centred(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``field`` in the top-left corner of a dark ``shape`` canvas (a tiling's dark junction)."""
    canvas = np.zeros(shape + field.shape[2:], np.float32)
    canvas[:field.shape[0], :field.shape[1]] = field
    return canvas


def test_the_diameter_window_leaves_a_dark_centre_for_the_nuclei():
    field, _ = disks_image(16, shape=(300, 300))
    image = dark_centred(field, (1200, 1200))
    top, left = content_corner(image, 400)
    assert top <= 50 and left <= 50                 # on the disks, the centre (400, 400) has none
    assert content_crop(image, 400).shape == (400, 400, 3)
    # The estimator looks there too: on the centre crop it would see background noise only.
    assert abs(math.log(estimate_diameter(image) * ESTIMATOR_BIAS / 16)) < math.log(1.15)


def test_the_diameter_window_stays_at_the_centre_where_there_is_signal():
    image, _ = disks_image(16, shape=(900, 700))
    assert content_corner(image, 300) == centre_corner(image.shape, 300) == (300, 200)
    assert content_corner(image, 1000) == (0, 0)          # the whole image
    strip = dark_centred(disks_image(16, shape=(40, 300))[0], (40, 2000))
    assert content_corner(strip, 384) == (0, 0)           # the window along a thin strip


def test_the_diameter_window_is_centred_on_the_field_of_view():
    from nuclei_app.canvas import Box

    image = dark_centred(disks_image(16, shape=(600, 600))[0], (1200, 1200))
    assert content_corner(image, 300) == (450, 450)                  # the canvas's centre: a quarter on the field
    assert content_corner(image, 300, Box(0, 600, 0, 600)) == (150, 150)    # the field's centre
    assert content_corner(image, 900, Box(0, 600, 0, 600)) == (0, 0)        # kept inside the image


def test_rescale_round_trip_keeps_size_and_content():
    image, labels = disks_image(24, shape=(203, 317))
    for factor in (0.37, 0.5, 2.0, 3.0):
        scaled = rescale_image(image, factor)
        assert scaled.shape[:2] == (round(203 * factor), round(317 * factor))
        back = resize_image(scaled, image.shape[:2])
        assert back.shape == image.shape
        # Disks 24 px across survive the trip: the foreground is the same up to its edges.
        agreement = ((back[..., 0] > 0.45) == (labels > 0)).mean()
        assert agreement > 0.97, (factor, agreement)


def test_label_resize_keeps_ids_and_exact_shape():
    _, labels = disks_image(20, shape=(101, 99))
    up = resize_labels(labels, (303, 297))
    assert up.shape == (303, 297) and set(np.unique(up)) == set(np.unique(labels))
    assert resize_labels(up, labels.shape).shape == labels.shape


def test_median_diameter_and_scale_factor():
    _, labels = disks_image(30)
    assert abs(median_diameter(labels) - 30) < 1.5
    assert median_diameter(np.zeros((5, 5), np.int32)) is None
    assert scale_factor(34.0, 17.0) == 0.5 and scale_factor(None, 17.0) == 1.0 and scale_factor(20.0, None) == 1.0
    assert scale_factor(1.0, 17.0) == 4.0  # clipped: a typo is not a reason to make a 70x image


def test_resize_is_one_smoothing_and_the_zoom_s_linear_interpolation():
    """The two-pass resize gives ``ndimage.zoom``'s values (float32 rounding apart) after a
    single 3-D smoothing (factor 1 on the channels): smoothing twice would blur every shrunk
    image more than the model was trained with."""
    from scipy import ndimage

    from nuclei_app.scale import resize_image

    rng = np.random.default_rng(0)
    cases = (((300, 200, 3), (90, 400)), ((300, 200), (301, 57)), ((7, 1), (20, 3)), ((64, 64, 2), (64, 1)),
             ((512, 512, 3), (330, 330)), ((400, 90, 3), (50, 12)), ((3, 40), (1, 5)), ((5, 5, 2), (1, 1)),
             ((33, 1000), (31, 125)), ((120, 80, 3), (120, 80)))
    for source, shape in cases:  # shrinking (sparse products) and enlarging (linear passes)
        image = rng.random(source).astype(np.float32)
        zoom = (shape[0] / source[0], shape[1] / source[1])
        sigma = tuple(max(0.0, (1 / z - 1) / 2) for z in zoom) + (0.0,) * (len(source) - 2)
        smoothed = ndimage.gaussian_filter(image, sigma, mode="mirror") if min(zoom) < 1 else image
        reference = ndimage.zoom(smoothed, zoom + (1.0,) * (len(source) - 2), order=1, mode="nearest", grid_mode=True)
        resized = resize_image(image, shape)
        assert resized.shape == shape + source[2:] and resized.dtype == np.float32
        np.testing.assert_allclose(resized, reference[:shape[0], :shape[1]], atol=2e-6)
