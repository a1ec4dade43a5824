"""Ground-truth label files of every kind users have (masks, ids, colours, JPEGs), and the
16-bit label PNG written for results."""
import io

import numpy as np
import pytest
from PIL import Image

from nuclei_app.imageio import ImageReadError
from nuclei_app.label_files import read_ground_truth, read_labels, write_labels_png


def test_read_labels_binary_mask_becomes_components(tmp_path):
    mask = np.zeros((30, 30), np.uint8)
    mask[2:8, 2:8] = 255
    mask[20:25, 20:28] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    labels = read_labels(tmp_path / "mask.png")
    assert labels.max() == 2 and set(np.unique(labels)) == {0, 1, 2}


def test_label_png_round_trip(tmp_path):
    labels = np.zeros((20, 30), np.int32)
    labels[1:5, 1:5] = 1
    labels[10:15, 10:15] = 300  # beyond 8 bits
    labels[16:19, 2:9] = 2
    write_labels_png(tmp_path / "labels.png", labels)
    assert Image.open(tmp_path / "labels.png").mode.startswith("I;16")
    np.testing.assert_array_equal(read_labels(tmp_path / "labels.png"), labels)


def png_of(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_of(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def two_touching_nuclei():
    labels = np.zeros((40, 40), np.int32)
    labels[5:20, 5:20] = 1
    labels[5:20, 20:35] = 2
    labels[25:35, 10:20] = 3
    return labels


def test_a_colour_label_image_gets_one_id_per_colour():
    from nuclei_app.metrics import image_scores

    labels = two_touching_nuclei()
    palette = np.array([[0, 0, 0], [200, 30, 30], [200, 30, 31], [10, 250, 10]], np.uint8)
    truth = read_labels(png_of(palette[labels]), name="colours.png")
    assert len(np.unique(truth)) == 4 and (truth == 0).sum() == (labels == 0).sum()
    assert image_scores(truth, labels).mean_ap == 1.0  # a perfect prediction scores perfectly


def test_a_jpeg_mask_is_binarised_not_read_as_many_ids():
    mask = (two_touching_nuclei() > 0).astype(np.uint8) * 255
    truth = read_labels(jpeg_of(mask), name="mask.jpg")
    assert truth.max() == 2  # the two touching squares are one blob, the third its own
    with pytest.raises(ImageReadError, match="colour JPEG can't hold a label image"):
        read_labels(jpeg_of(np.stack([mask, mask // 2, mask // 3], axis=-1)), name="labels.jpg")


def test_a_ground_truth_says_whether_it_was_a_mask():
    mask = (two_touching_nuclei() > 0).astype(np.uint8) * 255
    assert read_ground_truth(png_of(mask)).from_mask
    assert read_ground_truth(jpeg_of(mask), name="mask.jpg").from_mask
    assert not read_ground_truth(png_of(two_touching_nuclei().astype(np.uint16))).from_mask


def test_ids_without_background_and_binary_masks_are_told_apart():
    no_background = np.where(np.arange(40)[None, :] < 20, 1, 2).repeat(40, axis=0).astype(np.uint8)
    assert sorted(np.unique(read_labels(png_of(no_background)))) == [1, 2]
    binary = (two_touching_nuclei() > 0).astype(np.uint8)
    assert read_labels(png_of(binary)).max() == 2 and read_labels(png_of(binary * 255)).max() == 2
    ids = two_touching_nuclei().astype(np.uint16)
    np.testing.assert_array_equal(read_labels(png_of(ids)), ids)
