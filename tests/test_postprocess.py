import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import find_boundaries

from nuclei_app.config import PostprocessSettings
from nuclei_app.postprocess import instance_labels

from .conftest import disk

SHAPE = (80, 100)


def probabilities_for(labels: np.ndarray) -> np.ndarray:
    """What a perfect body + boundary network would output for these labels."""
    body = (labels > 0).astype(np.float32)
    boundary = find_boundaries(labels, mode="inner").astype(np.float32) * body
    return np.stack([body, boundary], axis=-1)


def touching_disks() -> np.ndarray:
    labels = np.zeros(SHAPE, np.int32)
    labels[disk(SHAPE, (40, 35), 14)] = 1
    labels[disk(SHAPE, (40, 62), 14) & (labels == 0)] = 2  # overlaps by 1 px: they touch
    return labels


def test_touching_disks_are_split_in_two():
    labels = touching_disks()
    assert (labels > 0).sum() > 0
    assert ndimage.label(labels > 0)[1] == 1  # one blob in the binary mask...
    result = instance_labels(probabilities_for(labels))
    assert result.max() == 2  # ...two nuclei after post-processing
    for label in (1, 2):  # and each found nucleus covers one true disk almost exactly
        overlap = [((result == label) & (labels == t)).sum() / ((result == label) | (labels == t)).sum() for t in (1, 2)]
        assert max(overlap) > 0.9


def test_a_centre_map_seeds_touching_nuclei_the_boundary_missed():
    """A third channel is the centre map (nuclei.json outputs body, boundary, centre): with no
    boundary predicted between two touching disks, body minus boundary seeds them as one
    nucleus, and their centre map's two peaks as two."""
    from train.data import centre_map  # the training target: what a perfect network outputs

    labels = touching_disks()
    no_boundary = probabilities_for(labels)
    no_boundary[..., 1] = 0.0
    assert instance_labels(no_boundary).max() == 1
    centre = centre_map(labels, (labels > 0) & ~find_boundaries(labels, mode="inner"))
    result = instance_labels(np.concatenate([no_boundary, centre[..., None]], -1))
    assert result.max() == 2
    for label in (1, 2):
        overlap = [((result == label) & (labels == t)).sum() / ((result == label) | (labels == t)).sum() for t in (1, 2)]
        assert max(overlap) > 0.9


def test_labels_are_sequential_and_min_size_drops_specks():
    labels = touching_disks()
    labels[disk(SHAPE, (10, 90), 2)] = 3  # 13 px
    probabilities = probabilities_for(labels)
    kept = instance_labels(probabilities, PostprocessSettings(min_size=5))
    dropped = instance_labels(probabilities, PostprocessSettings(min_size=20))
    assert kept.max() == 3 and dropped.max() == 2
    assert set(np.unique(dropped)) == {0, 1, 2}


def test_threshold_decides_the_foreground():
    probabilities = probabilities_for(touching_disks()) * 0.6
    assert instance_labels(probabilities, PostprocessSettings(threshold=0.5, marker_threshold=0.3)).max() == 2
    assert instance_labels(probabilities, PostprocessSettings(threshold=0.7)).max() == 0


def test_empty_prediction_gives_no_nuclei():
    result = instance_labels(np.zeros(SHAPE + (2,), np.float32))
    assert result.shape == SHAPE and result.max() == 0 and result.dtype == np.int32


def test_blob_without_marker_is_kept():
    labels = np.zeros(SHAPE, np.int32)
    labels[disk(SHAPE, (40, 50), 3)] = 1  # so small its interior is all boundary
    probabilities = probabilities_for(labels)
    probabilities[..., 1] = probabilities[..., 0]
    assert instance_labels(probabilities, PostprocessSettings(min_size=5)).max() == 1


def test_rejects_single_channel():
    with pytest.raises(ValueError, match="body \\+ boundary"):
        instance_labels(np.zeros(SHAPE + (1,), np.float32))


def test_flood_is_the_plain_watershed():
    """Blobs with one marker, several, or none, markers reaching outside the foreground and
    ids in two blobs, on random smooth score maps: the watershed's labels pixel for pixel."""
    from skimage.segmentation import watershed

    from nuclei_app.postprocess import flood

    rng = np.random.default_rng(4)
    for trial in range(60):
        shape = tuple(int(v) for v in rng.integers(20, 120, 2))
        score = ndimage.gaussian_filter(rng.random(shape), rng.uniform(1, 4)).astype(np.float32)
        score = (score - score.min()) / (score.max() - score.min())
        foreground = score > rng.uniform(0.3, 0.6)
        markers, _ = ndimage.label((score > rng.uniform(0.5, 0.8)) & foreground)
        if trial % 3 == 1:   # markers that spill out of the foreground
            markers = ndimage.grey_dilation(markers, size=3)
        if trial % 3 == 2 and markers.max() > 1:   # one id given to markers in two blobs
            markers[markers == markers.max()] = 1
        expected = watershed(-score, markers, mask=foreground)
        np.testing.assert_array_equal(flood(score, markers, foreground), expected, err_msg=f"trial {trial}")


def test_flood_with_tied_scores_splits_each_blob_among_its_own_markers():
    """Ties are where flood and the watershed may differ: each labels every pixel of a
    marked blob with one of that blob's markers, each marker keeps its own pixels."""

    from nuclei_app.postprocess import flood

    rng = np.random.default_rng(9)
    for trial in range(30):
        shape = tuple(int(v) for v in rng.integers(10, 60, 2))
        score = np.round(ndimage.gaussian_filter(rng.random(shape), 2) * 8) / 8   # few levels: many ties
        foreground = score >= np.median(score)
        markers, _ = ndimage.label((score >= score.max() - 0.125) & foreground)
        labels = flood(score.astype(np.float32), markers, foreground)
        blobs, count = ndimage.label(foreground)
        assert np.all(labels[markers > 0] == markers[markers > 0])
        for blob in range(1, count + 1):
            inside = blobs == blob
            own = set(np.unique(markers[inside])) - {0}
            assert set(np.unique(labels[inside])) == (own or {0}), f"trial {trial}, blob {blob}"
