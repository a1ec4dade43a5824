"""Stitching overlapping blocks, checked without the network: a thresholding segmenter,
whose whole-image answer is known exactly."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from benchmarks.huge_image import matched_iou
from nuclei_app.block_sources import ArraySource
from nuclei_app.label_sinks import ArraySink
from nuclei_app.measure import channel_intensities, measure_nuclei
from nuclei_app.stitching import objects_to_keep, plan_blocks, stitch_blocks


def threshold_segmenter(pixels: np.ndarray, block) -> np.ndarray:
    return ndimage.label(pixels[..., 0] > 0.5)[0]


def disks_on_borders(shape, core: int, radius_range=(6, 18), seed=0) -> np.ndarray:
    """Touching-free disks centred on core corners, on core borders (and half a pixel off
    them, where a centroid rule is most easily wrong) and at random places."""
    rng = np.random.default_rng(seed)
    height, width = shape
    centres = [(y, x) for y in range(0, height + 1, core) for x in range(0, width + 1, core)]  # corners
    centres += [(y + core / 2, x) for y in range(0, height, core) for x in range(core, width, core)]
    centres += [(y, x + core / 2 - 0.5) for y in range(core, height, core) for x in range(0, width, core)]
    centres += [(y - 0.5, x + core / 4) for y in range(core, height, core) for x in range(0, width, core)]
    centres += [(y + core / 4, x - 0.5) for y in range(0, height, core) for x in range(core, width, core)]
    centres += [tuple(rng.uniform(0, (height, width))) for _ in range(300)]
    labels, placed = np.zeros(shape, np.int32), []
    yy, xx = np.mgrid[:height, :width]
    for cy, cx in centres:
        radius = rng.uniform(*radius_range)
        if all(np.hypot(cy - y, cx - x) > radius + r + 3 for y, x, r in placed):
            placed.append((cy, cx, radius))
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = len(placed)
    return labels


def stitched_labels(image: np.ndarray, core: int, margin: int, segmenter=threshold_segmenter):
    source = ArraySource(image)
    sink = ArraySink(source.height, source.width)
    result = stitch_blocks(source, segmenter, sink, plan_blocks(source.height, source.width, core, margin))
    return sink.labels, result


def assert_same_objects(reference: np.ndarray, labels: np.ndarray) -> None:
    """The same objects with the very same pixels, whatever their ids."""
    assert (reference > 0).sum() == (labels > 0).sum()
    pairs = np.unique(np.stack([reference[reference > 0], labels[reference > 0]]), axis=1)
    count = len(np.unique(reference)) - 1
    assert pairs.shape[1] == count == len(np.unique(labels)) - 1  # one to one, nothing split or merged
    assert np.array_equal(reference > 0, labels > 0)


def test_block_wise_equals_whole_image_with_objects_on_borders_and_corners():
    core, margin = 128, 40  # the margin exceeds the largest disk (36 px across)
    truth = disks_on_borders((700, 900), core)
    image = (truth > 0).astype(np.float32)[..., None]
    labels, result = stitched_labels(image, core, margin)
    whole = ndimage.label(truth > 0)[0]
    assert result.count == whole.max() > 200
    assert_same_objects(whole, labels)
    assert matched_iou(whole, labels) == (whole.max(), 1.0)
    assert result.oversized == 0


def test_ids_are_sequential_and_the_table_measures_them_in_image_coordinates():
    core, margin = 128, 40
    truth = disks_on_borders((600, 700), core, seed=1)
    image = (truth > 0).astype(np.float32)[..., None]
    labels, result = stitched_labels(image, core, margin)
    assert np.array_equal(np.unique(labels), np.arange(result.count + 1))
    assert list(result.table["nucleus"]) == list(range(1, result.count + 1))
    # Every measurement as the whole image's table gives it, nucleus by nucleus.
    whole = measure_nuclei(labels, image).set_index("nucleus")
    table = result.table.set_index("nucleus")
    columns = [c for c in whole.columns if c != "touches_border"]
    np.testing.assert_allclose(table[columns].to_numpy(float), whole[columns].to_numpy(float), rtol=1e-9, atol=1e-9)
    assert table["touches_border"].equals(whole["touches_border"])
    assert table["touches_border"].any()


def test_channel_intensities_measured_block_by_block_are_the_whole_image_s():
    core, margin = 128, 40
    truth = disks_on_borders((500, 600), core, seed=2)
    marker = np.random.default_rng(0).random(truth.shape).astype(np.float32)  # a second channel, unlike the first
    image = np.stack([(truth > 0).astype(np.float32), marker], axis=-1)
    source = ArraySource(image)
    sink = ArraySink(source.height, source.width)
    result = stitch_blocks(source, threshold_segmenter, sink, plan_blocks(source.height, source.width, core, margin),
                           intensities=True)
    whole = channel_intensities(sink.labels, image)
    assert list(result.intensities.columns) == list(whole.columns) and len(whole) == result.count > 100
    np.testing.assert_allclose(result.intensities.sort_values("nucleus").to_numpy(float), whole.to_numpy(float),
                               rtol=1e-9)
    empty = stitch_blocks(ArraySource(np.zeros((300, 300, 2), np.float32)), threshold_segmenter,
                          ArraySink(300, 300), plan_blocks(300, 300, core, margin), intensities=True)
    assert empty.intensities.empty and list(empty.intensities.columns) == list(whole.columns)


def test_with_a_strict_centroid_rule_every_object_is_kept_by_exactly_one_block():
    core, margin = 100, 30
    truth = disks_on_borders((500, 500), core, radius_range=(4, 12), seed=2)
    keepers = np.zeros(truth.max() + 1, int)
    for block in plan_blocks(*truth.shape, core, margin):
        top, bottom, left, right = block.window
        local = truth[top:bottom, left:right]
        ids = np.unique(local)
        kept, cut = objects_to_keep(np.searchsorted(ids, local), block, *truth.shape)
        keepers[ids[kept[: len(ids)]]] += 1
        assert not (kept & cut).any()  # the margin is wider than any disk
    assert (keepers[1:] == 1).all()


def test_a_nucleus_segmented_differently_by_two_blocks_is_written_once():
    """Neighbouring blocks see a nucleus through different context: here every other
    column of blocks shifts its objects by a pixel, so that a disk centred half a pixel
    from a core border has its centroid on one side of it in one block and on the other
    side in the next: a strict rule would keep it twice (or lose it)."""
    core, margin = 128, 40
    truth = disks_on_borders((512, 640), core, seed=3)
    image = (truth > 0).astype(np.float32)[..., None]

    def shifting_segmenter(pixels, block):
        labels = threshold_segmenter(pixels, block)
        if (block.left // core) % 2 == 1:  # an odd column of blocks
            labels[:, 1:] = labels[:, :-1].copy()
            labels[:, 0] = 0
        return labels

    labels, result = stitched_labels(image, core, margin, shifting_segmenter)
    assert result.duplicates > 0
    assert result.count == truth.max()
    matched, mean_iou = matched_iou(truth, labels)
    assert matched == truth.max() and mean_iou > 0.9


def test_an_object_larger_than_the_margin_is_kept_cut_never_lost():
    image = np.zeros((300, 900, 1), np.float32)
    image[140:150, 60:840] = 1.0  # a 780 px bar; the margin is 30 px
    labels, result = stitched_labels(image, 128, 30)
    assert result.oversized >= 1
    assert np.array_equal(labels > 0, image[..., 0] > 0)  # every pixel labelled once
    assert result.table["touches_border"].all()  # flagged: not the whole object


def test_cores_tile_the_image_and_windows_add_the_margin():
    layout = plan_blocks(1000, 700, 256, 50)
    covered = np.zeros((1000, 700), int)
    for block in layout:
        covered[block.top:block.bottom, block.left:block.right] += 1
        top, bottom, left, right = block.window
        assert (top, left) == (max(0, block.top - 50), max(0, block.left - 50))
        assert (bottom, right) == (min(1000, block.bottom + 50), min(700, block.right + 50))
    assert (covered == 1).all()
