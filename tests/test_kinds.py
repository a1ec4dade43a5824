import numpy as np

from nuclei_app.imageio import read_image
from nuclei_app.kinds import image_kind, input_kind, kind_caution, kind_confidence, kind_tells

from .conftest import SAMPLES, on_canvas


def test_image_kinds_of_synthetic_and_sample_images():
    dark = np.zeros((10, 10, 3), np.float32)
    light_grey = np.full((10, 10, 3), 0.8, np.float32)
    purple = np.stack([np.full((10, 10), 0.8), np.full((10, 10), 0.5), np.full((10, 10), 0.8)], -1)
    assert [image_kind(i) for i in (dark, light_grey, purple)] == ["fluorescence", "brightfield", "tissue"]
    kinds = {name: image_kind(read_image(SAMPLES / "images" / f"{name}.png"))
             for name in ("fluorescence_dense", "brightfield", "tissue_he")}
    assert kinds == {"fluorescence_dense": "fluorescence", "brightfield": "brightfield", "tissue_he": "tissue"}


def test_the_kind_is_the_field_s_on_a_blank_canvas():
    for name, kind in (("fluorescence_dense", "fluorescence"), ("brightfield", "brightfield"), ("tissue_he", "tissue")):
        image = read_image(SAMPLES / "images" / f"{name}.png")
        for fill in (0.0, 1.0):
            canvas = on_canvas(image, (3 * image.shape[0], 2 * image.shape[1]), (image.shape[0], 0), fill)
            assert image_kind(canvas) == kind, (name, fill)


def test_the_kind_of_a_12_bit_or_8_bit_image_in_a_16_bit_file_is_judged_on_its_camera_s_range():
    """16-bit files map by the type's range, so a 12-bit brightfield read as [0, 1/16]: dark,
    and was taken for fluorescence (no caution). Judged on its camera's bits, exposed to the
    full range or less (its brightest value at 3000 of 4095)."""
    for name, kind in (("fluorescence_dense", "fluorescence"), ("brightfield", "brightfield"), ("tissue_he", "tissue")):
        image = read_image(SAMPLES / "images" / f"{name}.png")
        for brightest in (255, 4095, 3000, 16383):
            in_16_bits = (np.round(image / image.max() * brightest) / 65535).astype(np.float32)
            assert image_kind(in_16_bits) == kind, (name, brightest)


def test_a_dim_16_bit_fluorescence_field_under_256_is_fluorescence():
    """A camera offset of 200 and a dim stain keep every value under 256: judged on 8 bits
    its background sat at 0.8 of the range, and every such image was cautioned as
    brightfield. The kind follows the network's own light/dark decision (the stretch)."""
    rng = np.random.default_rng(1)
    field = 200 + rng.normal(0, 3, (128, 128))
    field[30:45, 30:45] += 40
    field[80:95, 60:75] += 40
    in_16_bits = (np.round(field) / 65535).astype(np.float32)
    assert image_kind(in_16_bits) == "fluorescence"
    assert image_kind(in_16_bits, light=True) == "brightfield"   # the network's decision, where given


def test_confidence_reads_the_model_metrics():
    metrics = {"validation": {"tissue": {"mean_ap": 0.3, "images": 21}, "fluorescence": {"mean_ap": 0.6, "images": 100}}}
    assert kind_confidence(metrics, "tissue") == (0.3, 21, True)
    assert kind_confidence(metrics, "fluorescence") == (0.6, 100, False)
    assert kind_confidence(metrics, "brightfield") == (None, 0, True)


def test_the_cli_cautions_only_where_a_kind_scores_low():
    metrics = {"validation": {"tissue": {"mean_ap": 0.3, "images": 21}, "fluorescence": {"mean_ap": 0.6, "images": 100}}}
    assert kind_caution(metrics, "tissue") == ("looks like stained tissue (H&E or similar), on which the model's "
                                               "validation mean AP is only 0.30 (21 images): expect missed or "
                                               "merged nuclei, and check the result by eye")
    assert kind_caution(metrics, "fluorescence") is None
    assert kind_caution(metrics, "brightfield") == ("looks like brightfield, on which the model has no validation "
                                                    "score: check the result by eye")
    assert kind_caution({}, "brightfield") is None   # a model with no scores: not a note on every image
    one = {"validation": {"tissue": {"mean_ap": 0.3, "images": 1}}}
    assert "(1 image)" in kind_caution(one, "tissue")


def test_a_field_of_noise_with_nothing_found_has_no_kind_to_tell():
    assert not kind_tells(quiet=True, count=0)
    assert kind_tells(quiet=True, count=1) and kind_tells(quiet=False, count=0)


def test_a_stack_s_kind_is_that_of_the_channel_the_network_sees_whatever_the_layout():
    """A trial: one channel segmented from a 3-channel stack was judged on the three stains as
    colours ("tissue"), the same channel in a 2-channel stack or alone on itself."""
    from .test_channels import nuclei_and_cytoplasm

    nuclei, cytoplasm, _ = nuclei_and_cytoplasm()
    stacks = [np.stack([cytoplasm, np.zeros_like(nuclei), nuclei], -1), np.stack([cytoplasm, nuclei], -1),
              cytoplasm[..., None]]
    for light in (None, True, False):
        assert len({input_kind(stack, 0, light) for stack in stacks}) == 1, light
