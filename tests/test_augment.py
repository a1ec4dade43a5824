import numpy as np
from scipy import ndimage

from train.augment import (Augmentation, augment_intensity, flip_rotate, hue_saturation, render_stained,
                           stain_jitter, synthetic_stain)

from .conftest import SAMPLES, fluorescence_like, synthetic_labels


def test_flips_and_rotations_keep_image_and_labels_aligned():
    labels = synthetic_labels(shape=(40, 64))
    image = np.stack([labels > 0, labels == 1, np.zeros_like(labels)], -1).astype(np.float32)
    for seed in range(8):
        turned_image, turned_labels = flip_rotate(image, labels, np.random.default_rng(seed))
        assert np.array_equal(turned_image[..., 0] > 0, turned_labels > 0)
        assert np.array_equal(turned_image[..., 1] > 0, turned_labels == 1)


def test_stain_jitter_changes_colours_but_keeps_nuclei_where_they_are():
    from nuclei_app.imageio import read_image
    from nuclei_app.inference import preprocess

    tissue = preprocess(read_image(SAMPLES / "images" / "tissue_he.png"))[:128, :128]
    jittered = stain_jitter(tissue, Augmentation(stain_sigma=0.2), np.random.default_rng(3))
    assert jittered.shape == tissue.shape and 0 <= jittered.min() and jittered.max() <= 1
    assert np.abs(jittered - tissue).mean() > 0.005
    assert np.corrcoef(jittered.mean(-1).ravel(), tissue.mean(-1).ravel())[0, 1] > 0.8


def test_hue_shift_keeps_grey_grey_and_outputs_stay_in_range():
    grey = np.repeat(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8, 1), 3, -1)
    shifted = hue_saturation(grey, Augmentation(), np.random.default_rng(0))
    np.testing.assert_allclose(shifted[..., 0], shifted[..., 2], atol=1e-6)
    rng = np.random.default_rng(1)
    for _ in range(20):
        out = augment_intensity(rng.random((16, 16, 3), np.float32), Augmentation(), rng, stained=True)
        assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_synthetic_stain_renders_fluorescence_as_a_stained_light_image_with_the_nuclei_in_place():
    from nuclei_app.inference import prepare

    labels = synthetic_labels(shape=(96, 96), count=8)
    network_input = np.repeat(fluorescence_like(labels)[..., None], 3, -1).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    for _ in range(12):
        rendered = render_stained(network_input, Augmentation(), rng)
        background = np.median(rendered[labels == 0])
        assert background > 0.5 and rendered[labels > 0].mean() < background - 0.1   # nuclei darker
        assert prepare(rendered)[1].invert   # a light background, as preprocess sees it
        stained = synthetic_stain(network_input, Augmentation(), rng)
        assert stained.shape == network_input.shape and stained.dtype == np.float32
        assert 0 <= stained.min() and stained.max() <= 1
        # Back in the network-input domain, nuclei bright, where the fluorescence had them.
        assert stained[labels > 0].mean() > stained[labels == 0].mean() + 0.2


def test_tissue_rendering_adds_cytoplasm_around_the_nuclei_and_keeps_them_darkest():
    labels = synthetic_labels(shape=(96, 96), count=8)
    network_input = np.repeat(fluorescence_like(labels)[..., None], 3, -1).astype(np.float32) / 255
    far = ndimage.distance_transform_edt(labels == 0) > 12
    near = (ndimage.distance_transform_edt(labels == 0) <= 2) & (labels == 0)
    rng = np.random.default_rng(0)
    tissue = Augmentation(synthetic_tissue_probability=1.0, cytoplasm_px=(4.0, 4.0), background_haematoxylin_od=(0.0, 0.0))
    for _ in range(8):
        rendered = render_stained(network_input, tissue, rng, labels).mean(-1)
        # Cytoplasm (just outside each nucleus) absorbs more than the open background, the
        # nuclei most of all.
        assert rendered[labels > 0].mean() < rendered[near].mean() < rendered[far].mean() - 0.02


def test_tissue_rendering_off_draws_the_same_crops_as_before_it_existed():
    labels = synthetic_labels(shape=(64, 64), count=5)
    network_input = np.repeat(fluorescence_like(labels)[..., None], 3, -1).astype(np.float32) / 255
    with_labels = render_stained(network_input, Augmentation(), np.random.default_rng(4), labels)
    without = render_stained(network_input, Augmentation(), np.random.default_rng(4))
    np.testing.assert_array_equal(with_labels, without)
