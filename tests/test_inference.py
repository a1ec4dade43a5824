import numpy as np
import pytest

from nuclei_app.config import InferenceSettings, Normalisation
from nuclei_app.inference import (Stretch, balanced_tile, blend_ramp, is_light_background, noise_level, pad_to_multiple,
                                  predict_preprocessed, preprocess, tile_starts)

from .conftest import on_canvas


@pytest.fixture(scope="module")
def small_unet():
    """A real, untrained U-Net with random weights: locality is all these tests need."""
    from train.unet import UNetConfig, build_unet

    import keras
    keras.utils.set_random_seed(1)
    return build_unet(UNetConfig(base_filters=4, depth=2))


def test_preprocess_stretches_percentiles():
    rng = np.random.default_rng(0)
    dim = rng.normal(0.003, 0.0005, (64, 64, 3)).astype(np.float32)  # a dim 16-bit-like image
    dim[10:20, 10:20] = dim[40:50, 30:40] = 0.04                      # two nuclei
    out = preprocess(dim)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0


def test_noise_level_measures_the_pixel_noise_whatever_the_nuclei():
    rng = np.random.default_rng(2)
    field = rng.normal(0.2, 0.01, (256, 256, 3)).astype(np.float32)
    assert noise_level(field) == pytest.approx(0.01, rel=0.1)
    field[::32, :] += 0.5   # bright rows and edges: a minority of the neighbours
    field[40:90, 40:90] += 0.3
    assert noise_level(field) == pytest.approx(0.01, rel=0.1)
    assert noise_level(np.full((8, 8, 1), 0.5)) == 0.0 and noise_level(np.zeros((8, 1, 1))) == 0.0


def test_noise_under_one_grey_level_is_half_a_step_not_none():
    """A quiet 8-bit empty well (values 100 and 101): most neighbours are equal, the median
    difference 0, and the floor was off: its two grey levels were stretched over the whole range."""
    rng = np.random.default_rng(5)
    well = (100 + (rng.random((64, 64, 1)) < 0.2)).astype(np.uint8)
    assert noise_level(well) == 0.5                       # in the file's units, no uint8 wrap-around
    assert noise_level(well / np.float32(255)) == pytest.approx(0.5 / 255)
    assert Stretch.fit(well / np.float32(255)).quiet


def test_an_empty_field_s_noise_is_not_stretched_into_nuclei():
    """A 16-bit empty well (camera offset 200, read noise 4) was stretched until its noise
    filled the range, and the network found nuclei of 2 px in it. Its stretch now spans
    ``noise_span`` times its noise; nuclei 10x the noise above it are stretched as before."""
    rng = np.random.default_rng(3)
    empty = ((200 + rng.normal(0, 4, (128, 128, 1))) / 65535).repeat(3, -1).astype(np.float32)
    stretch = Stretch.fit(empty)
    assert stretch.quiet and not stretch.invert
    assert np.percentile(stretch.apply(empty), 99.8) < 0.6   # 5 noise sigmas of the 10 the floor spans
    bare = Stretch.fit(empty, Normalisation(noise_span=0))
    assert not bare.quiet and np.percentile(bare.apply(empty), 99.8) == pytest.approx(1.0, abs=0.01)
    with_nuclei = empty.copy()
    with_nuclei[20:40, 20:40] += 40 / 65535
    with_nuclei[70:90, 60:80] += 40 / 65535
    stretch = Stretch.fit(with_nuclei)
    assert not stretch.quiet and stretch == Stretch.fit(with_nuclei, Normalisation(noise_span=0))


def test_a_quiet_light_field_is_still_inverted_its_floor_on_the_dark_side():
    """A sparse brightfield well: two dark nuclei 5x the noise below a light background. The
    floor widens the range away from the background, so the nuclei still come out bright."""
    rng = np.random.default_rng(6)
    well = rng.normal(0.8, 0.01, (128, 128, 3)).astype(np.float32)
    well[20:32, 20:32] -= 0.05
    well[80:92, 60:72] -= 0.05
    stretch = Stretch.fit(well)
    assert stretch.quiet and stretch.invert and stretch.low < stretch.high - 0.09
    out = stretch.apply(well)
    assert out[26, 26].mean() > 0.5 > 0.3 > np.median(out)


def test_light_background_is_inverted_so_nuclei_are_bright():
    image = np.full((64, 64, 3), 0.9, np.float32)
    image[20:30, 20:30] = 0.2  # a dark nucleus on a light (brightfield) background
    out = preprocess(image)
    assert out[25, 25].mean() > out[5, 5].mean()
    assert is_light_background(image)
    kept = preprocess(image, Normalisation(invert_light_background=False))
    assert kept[25, 25].mean() < kept[5, 5].mean()


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("light", [False, True])
def test_a_field_on_a_blank_canvas_is_stretched_as_alone_and_the_canvas_is_background(fill, light):
    """A light field on black read as fluorescence before (the median pixel was the canvas),
    and its canvas, inverted, became a bright slab; a white canvas set the stretch's top."""
    rng = np.random.default_rng(4)
    field = rng.normal(0.85 if light else 0.1, 0.03, (150, 170, 3)).astype(np.float32)
    field[40:60, 50:75] = 0.3 if light else 0.7                    # a nucleus
    canvas = on_canvas(field, (400, 380), (200, 30), fill)
    out = preprocess(canvas)
    np.testing.assert_array_equal(out[200:350, 30:200], preprocess(field))
    out[200:350, 30:200] = 0.0
    assert not out.any()                                          # the canvas: the network's background


def test_flat_image_does_not_divide_by_zero():
    out = preprocess(np.full((16, 16, 3), 0.3, np.float32))
    assert np.isfinite(out).all()


def test_pad_to_multiple():
    padded, size = pad_to_multiple(np.zeros((37, 50, 3), np.float32), 16)
    assert padded.shape == (48, 64, 3) and size == (37, 50)


def test_tile_starts_cover_everything():
    for length in (64, 100, 257, 1000):
        starts = tile_starts(length, 64, 16)
        assert starts[0] == 0 and starts[-1] + 64 == max(length, 64)
        assert all(b - a <= 64 - 16 for a, b in zip(starts, starts[1:]))


def test_blend_ramp_never_zero():
    ramp = blend_ramp(64, 16)
    assert ramp.min() > 0 and ramp[32] == 1.0 and ramp[0] < 0.1


def test_tiled_equals_untiled_away_from_seams(small_unet):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (200, 232, 3)).astype(np.float32)
    whole = predict_preprocessed(small_unet, image, InferenceSettings(tile_size=512), multiple=4)
    tiled = predict_preprocessed(small_unet, image, InferenceSettings(tile_size=96, tile_overlap=16), multiple=4)
    assert whole.shape == tiled.shape == (200, 232, 2)
    # Far from every tile edge (beyond the ~20 px receptive field of this depth-2 net)
    # each pixel comes from tile interiors, where the network sees the whole-image context.
    far = np.ones(image.shape[:2], bool)
    margin = 22
    for axis, length in enumerate(image.shape[:2]):
        tile = balanced_tile(length, 96, 16, 4)
        for start in tile_starts(length, tile, 16):
            for edge in (start, start + tile):
                index = [slice(None)] * 2
                index[axis] = slice(max(0, edge - margin), edge + margin)
                far[tuple(index)] = False
    assert far.sum() > 1000
    np.testing.assert_allclose(tiled[far], whole[far], atol=1e-4)
    assert np.abs(tiled - whole).mean() < 0.02  # and the blended seams stay close too


def test_progress_reports_every_tile(small_unet):
    calls = []
    predict_preprocessed(small_unet, np.zeros((100, 130, 3), np.float32),
                         InferenceSettings(tile_size=64, tile_overlap=16), multiple=4,
                         progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] == len(calls) > 1


def test_tta_keeps_shape_and_averages_flips(small_unet):
    image = np.random.default_rng(2).uniform(0, 1, (48, 40, 3)).astype(np.float32)
    plain = predict_preprocessed(small_unet, image, InferenceSettings(tta=False), multiple=4)
    tta = predict_preprocessed(small_unet, image, InferenceSettings(tta=True), multiple=4)
    flipped = predict_preprocessed(small_unet, image[:, ::-1].copy(), InferenceSettings(tta=False), multiple=4)
    assert tta.shape == plain.shape == (48, 40, 2)
    assert not np.allclose(tta, plain)
    # TTA of an image equals TTA of its mirror, mirrored back: flips are averaged out.
    tta_flipped = predict_preprocessed(small_unet, image[:, ::-1].copy(), InferenceSettings(tta=True), multiple=4)
    np.testing.assert_allclose(tta_flipped[:, ::-1], tta, atol=1e-5)
    assert flipped.shape == plain.shape


def test_balanced_tiles_are_equal_and_cover():
    assert balanced_tile(2048, 1024, 64, 16) == 736  # three equal tiles, not two full ones plus a sliver
    assert balanced_tile(500, 1024, 64, 16) == 500
    tile = balanced_tile(3000, 1024, 64, 16)
    assert tile <= 1024 and tile % 16 == 0
    starts = tile_starts(3000, tile, 64)
    assert starts[-1] + tile == 3000 and len(starts) == 4
