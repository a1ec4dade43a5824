"""Notes on what an image read holds: NaN values, and images that are no micrograph (one
value, a label image, a binary mask), checked through the reader as every route uses it."""
import numpy as np
import tifffile
from PIL import Image

from nuclei_app.imageio import read_channels, read_image
from nuclei_app.label_files import read_labels

from .awkward_files import encode, tiff


def test_nan_and_infinite_float_pixels_are_counted_in_a_note(tmp_path):
    pixels = np.linspace(0, 5, 30 * 40, dtype=np.float32).reshape(30, 40)
    pixels[:10] = np.nan
    pixels[20, 0] = np.inf
    tifffile.imwrite(tmp_path / "nan.tif", pixels)
    notes = []
    read = read_channels(tmp_path / "nan.tif", notes=notes)
    assert np.isfinite(read).all() and read[:10].max() == 0.0
    assert notes == ["401 values are NaN or infinite (33.4 %): NaN read as the image's darkest value, infinities "
                     "as its extremes"]
    tifffile.imwrite(tmp_path / "clean.tif", np.nan_to_num(pixels, posinf=5.0))
    read_channels(tmp_path / "clean.tif", notes=(clean := []))
    assert clean == []


def test_a_label_image_given_as_the_image_is_noted(tmp_path):
    """A user test: a ground-truth mask (uint16 ids) segmented as a micrograph gave "12 nuclei",
    status ok, no word. The samples' own ground truth must be told; their images, a grey
    micrograph and camera noise must not."""
    from .conftest import SAMPLES

    for truth in sorted((SAMPLES / "ground_truth").glob("*.png")):
        labels = read_labels(truth)
        tifffile.imwrite(tmp_path / "labels.tif", labels.astype(np.uint16))
        read_channels(tmp_path / "labels.tif", notes=(notes := []))
        count = len(np.unique(labels)) - 1
        assert notes == [f"this looks like a label image ({count} ids, each one flat region), not a microscopy "
                         "image: segment the image it labels"], truth.name
        read_channels(SAMPLES / "images" / truth.name, notes=(image_notes := []))
        assert image_notes == [], truth.name
    grey = (read_image(SAMPLES / "images" / "fluorescence_sparse.png")[..., 0] * 255).astype(np.uint8)
    noise = np.random.default_rng(0).normal(1000, 20, (256, 256)).astype(np.uint16)
    for name, data in (("grey.png", encode(grey, "PNG")), ("noise.tif", tiff(noise))):
        (tmp_path / name).write_bytes(data)
        read_channels(tmp_path / name, notes=(notes := []))
        assert notes == [], name


def test_a_binary_mask_given_as_the_image_is_noted(tmp_path):
    """A mask of 0 and 255 (what a user's thresholding or a DSB2018 mask file holds) had no
    word: the label-image note asks for at least three ids."""
    from .conftest import SAMPLES

    truth = read_labels(SAMPLES / "ground_truth" / "fluorescence_sparse.png")
    mask = Image.fromarray(((truth > 0) * 255).astype(np.uint8))
    for mode in ("1", "L", "RGB", "RGBA"):
        mask.convert(mode).save(tmp_path / f"mask_{mode}.png")
        read_channels(tmp_path / f"mask_{mode}.png", notes=(notes := []))
        assert notes == ["this looks like a binary mask (only the values 0 and 255), not a microscopy image: "
                         "segment the image it was made from"], mode
    tifffile.imwrite(tmp_path / "mask.tif", (truth > 0).astype(np.uint16) * 7)
    read_channels(tmp_path / "mask.tif", notes=(notes := []))
    assert notes == ["this looks like a binary mask (only the values 0 and 7), not a microscopy image: "
                     "segment the image it was made from"]
    # Two levels in different colours are a colour image, not a mask.
    two_colours = np.zeros(truth.shape + (3,), np.uint8)
    two_colours[truth > 0] = (255, 0, 0)
    Image.fromarray(two_colours).save(tmp_path / "red.png")
    read_channels(tmp_path / "red.png", notes=(notes := []))
    assert notes == []


def test_the_binary_mask_check_on_pixels_of_two_values_and_fewer():
    """The one-pass check (it sorted every pixel before): ties, bool, one value, one pixel."""
    from nuclei_app.image_notes import binary_mask_note

    half = np.zeros((40, 40, 1), np.uint8)
    half[:, 20:] = 9
    assert binary_mask_note(half).startswith("this looks like a binary mask (only the values 0 and 9)")
    assert binary_mask_note(half.astype(bool)).startswith("this looks like a binary mask (only the values 0 and 1)")
    assert binary_mask_note(np.full((40, 40, 1), 3, np.uint8)) is None           # one value: the flat note's
    assert binary_mask_note(np.zeros((0, 0, 1), np.uint8)) is None
    three = half.copy()
    three[0, 0] = 4                                                             # a third value anywhere
    assert binary_mask_note(three) is None
    specks = np.zeros((40, 40, 1), np.uint8)
    specks[::8, ::8] = 255                                                      # no objects drawn
    assert binary_mask_note(specks) is None


def test_an_image_of_one_value_is_noted(tmp_path):
    """A user test: a blank field gave 0 nuclei at a made-up 5.2 px diameter, with no word."""
    Image.fromarray(np.full((40, 50), 12, np.uint8)).save(tmp_path / "blank.png")
    read_channels(tmp_path / "blank.png", notes=(notes := []))
    assert notes == ["every pixel has the same value (12): there is nothing to segment, and the diameter is no "
                     "measure"]
    Image.fromarray(np.full((40, 50), 12, np.uint8) + np.eye(40, 50, dtype=np.uint8)).save(tmp_path / "line.png")
    read_channels(tmp_path / "line.png", notes=(one_line := []))
    assert one_line == []


def test_a_micrograph_given_as_ground_truth_is_told_apart_from_labels():
    from nuclei_app.image_notes import micrograph_truth_note

    from .conftest import SAMPLES

    truth = read_labels(SAMPLES / "ground_truth" / "fluorescence_dense.png")
    assert micrograph_truth_note(truth) is None
    micrograph = read_image(SAMPLES / "images" / "fluorescence_dense.png")
    as_ids = (micrograph[..., 0] * 255).round().astype(np.int32)   # every grey level an "id"
    note = micrograph_truth_note(as_ids)
    assert note.startswith("The ground truth does not look like a label image: its ") and "the scores mean nothing" in note
