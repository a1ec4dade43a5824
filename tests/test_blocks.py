"""Huge images block by block: lazy TIFF reading, stitching, the global decisions, outputs.

Stitching is checked without the network (a thresholding segmenter, whose whole-image
answer is known exactly); the network path against ``pipeline.segment`` on the same image.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from benchmarks.huge_image import NucleusField, matched_iou, write_field_tiff
from nuclei_app import blocks
from nuclei_app.blocks import (
    ArraySink, ArraySource, DiskSink, NetworkGrid, Stretch, TiffSource, label_dtype,
    needs_blocks, objects_to_keep, percentile_stride, plan_blocks, segment_array_in_blocks, segment_in_blocks,
    spread, stitch_blocks, strided_labels, write_label_tiff,
)
from nuclei_app.canvas import Box, content_box
from nuclei_app.config import Normalisation, ReadLimits
from nuclei_app.imageio import ImageReadError, read_channels
from nuclei_app.planes import PlaneRequest
from nuclei_app.inference import percentile_sample, preprocess
from nuclei_app.measure import channel_intensities, measure_nuclei
from nuclei_app.pipeline import segment
from nuclei_app.scale import estimate_diameter, rescale_image, resize_image

from .conftest import SAMPLES

# ---------------------------------------------------------------------------------------
# Stitching, with a segmenter whose whole-image answer is exact


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


def test_the_scale_is_checked_on_blocks_spread_over_the_image():
    layout = plan_blocks(5000, 5000, 500, 50)  # 10 x 10
    checked, others = spread(layout, 16)
    assert len(checked) == 16 and len(others) == 84 and set(checked).isdisjoint(others)
    assert {b.top for b in checked} == {b.left for b in checked} == {0, 1500, 3000, 4500}
    strip = plan_blocks(500, 20000, 500, 50)  # one row of 40 blocks
    assert len(spread(strip, 16)[0]) == 16
    small = plan_blocks(1000, 1000, 500, 50)
    assert spread(small, 16) == (small, [])


# ---------------------------------------------------------------------------------------
# The whole image's decisions, made once


def test_the_fixed_stretch_is_preprocess_exactly():
    rng = np.random.default_rng(0)
    for image in (rng.uniform(0, 0.3, (1200, 1800, 3)).astype(np.float32),      # dark: not inverted
                  rng.uniform(0, 0.3, (600, 500, 3)).astype(np.float32),        # all of it the sample
                  rng.uniform(0.5, 1.0, (900, 700, 3)).astype(np.float32)):      # light: inverted
        stride = percentile_stride(*image.shape[:2])
        stretch = Stretch.fit(image[::stride, ::stride], Normalisation())
        np.testing.assert_array_equal(stretch.apply(image), preprocess(image, Normalisation()))
    assert stretch.invert


@pytest.mark.parametrize("shape", [(100, 100), (1414, 1415), (2000, 2001), (20000, 20000), (7, 300000)])
def test_the_percentile_sample_is_inference_s(shape):
    stride = percentile_stride(*shape)
    view = np.broadcast_to(np.float32(0), shape + (3,))  # no memory: only the shape matters
    assert percentile_sample(view).shape[:2] == view[::stride, ::stride].shape[:2]


@pytest.mark.parametrize("shape", [(5000, 40, 2), (700, 900, 3), (300, 200, 1)])
def test_the_channel_is_chosen_on_the_pixels_it_would_see_in_the_whole_image(shape):
    from nuclei_app.channels import _sample

    image = np.random.default_rng(3).random(shape, dtype=np.float32)
    np.testing.assert_array_equal(blocks.survey(ArraySource(image)).channels, _sample(image))


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


# ---------------------------------------------------------------------------------------
# Reading TIFFs by windows


def write_layout(path, layout: str) -> np.ndarray:
    rng = np.random.default_rng(2)
    grey16 = rng.integers(0, 65535, (300, 410), dtype=np.uint16)
    rgb = rng.integers(0, 255, (300, 410, 3), dtype=np.uint8)
    if layout == "tiled grey 16-bit":
        tifffile.imwrite(path, grey16, tile=(64, 64), compression="zlib")
    elif layout == "stripped RGB":
        tifffile.imwrite(path, rgb, compression="zlib", rowsperstrip=16)
    elif layout == "uncompressed one strip":
        tifffile.imwrite(path, grey16, rowsperstrip=300)
    elif layout == "uncompressed RGBA one strip":
        tifffile.imwrite(path, np.dstack([rgb, rgb[..., :1]]), photometric="rgb", extrasamples=["unassalpha"])
    elif layout == "OME channels, tiled":
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0), tile=(64, 64), compression="zlib", ome=True,
                         metadata={"axes": "CYX"})
    elif layout == "ImageJ Z stack of channels":
        stack = np.stack([np.moveaxis(rgb[..., :2], -1, 0), np.moveaxis(rgb[..., 1:], -1, 0)])
        tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZCYX"})
    elif layout == "16-bit 4 samples, the 4th tagged alpha":  # a fluorescence stack: the 4th is a channel
        tifffile.imwrite(path, np.dstack([grey16, grey16[::-1], grey16[:, ::-1], grey16 // 2]), photometric="rgb",
                         extrasamples=["unassalpha"])
    elif layout == "pages without axes":  # read as channels, whole and by windows alike
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0)[:2])
    elif layout == "pages without axes, tiled":
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0), tile=(64, 64), compression="zlib")
    elif layout == "pyramid":
        with tifffile.TiffWriter(path, bigtiff=True) as writer:
            writer.write(rgb, subifds=1, tile=(64, 64), compression="zlib", photometric="rgb")
            writer.write(rgb[::2, ::2], subfiletype=1, tile=(64, 64), compression="zlib", photometric="rgb")
    elif layout == "float with NaN":
        values = rng.normal(100, 30, (300, 410)).astype(np.float32)
        values[5, 7] = np.nan
        tifffile.imwrite(path, values, tile=(64, 64))
    return read_channels(path)


@pytest.mark.parametrize("layout", ["tiled grey 16-bit", "stripped RGB", "uncompressed one strip",
                                    "uncompressed RGBA one strip", "OME channels, tiled", "ImageJ Z stack of channels",
                                    "16-bit 4 samples, the 4th tagged alpha", "pages without axes",
                                    "pages without axes, tiled", "pyramid", "float with NaN"])
def test_windows_read_as_the_whole_image_is_read(tmp_path, layout):
    path = tmp_path / "image.tif"
    expected = write_layout(path, layout)
    read_channels(path, notes=(notes := []))
    with TiffSource(path) as source:
        assert (source.height, source.width, source.channels) == expected.shape
        if layout != "float with NaN":  # their count would take a pass of its own over a huge image
            assert source.notes == notes
        for window in ((0, 300, 0, 410), (37, 211, 101, 409), (299, 300, 0, 1)):
            top, bottom, left, right = window
            np.testing.assert_array_equal(source.read(*window), expected[top:bottom, left:right])


def write_focus_stack(path, layout: str) -> None:
    """Three Z planes of one field, the middle one sharp (the others blurred), two channels."""
    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 60000, (300, 410)).astype(np.float32)
    planes = np.stack([ndimage.gaussian_filter(sharp, 3), sharp, ndimage.gaussian_filter(sharp, 5)]).astype(np.uint16)
    if layout == "ImageJ ZCYX, one strip":
        tifffile.imwrite(path, np.stack([planes, planes // 2], axis=1), imagej=True, metadata={"axes": "ZCYX"})
    else:  # tiled and compressed: read through zarr
        tifffile.imwrite(path, planes, ome=True, tile=(64, 64), compression="zlib", metadata={"axes": "ZYX"})


@pytest.mark.parametrize("layout", ["ImageJ ZCYX, one strip", "OME ZYX, tiled"])
@pytest.mark.parametrize("z, note", [(None, "the first is segmented"), (2, "plane 2 is segmented"),
                                     ("focus", "plane 1, the sharpest"), ("max", "maximum-intensity projection")])
def test_a_z_stack_is_read_by_windows_at_the_plane_chosen_as_whole(tmp_path, layout, z, note):
    path = tmp_path / "stack.tif"
    write_focus_stack(path, layout)
    expected = read_channels(path, plane=PlaneRequest(z))
    with TiffSource(path, plane=PlaneRequest(z)) as source:
        assert (source.height, source.width, source.channels) == expected.shape
        for window in ((0, 300, 0, 410), (37, 211, 101, 409)):
            top, bottom, left, right = window
            np.testing.assert_array_equal(source.read(*window), expected[top:bottom, left:right])
        assert len(source.notes) == 1 and source.notes[0].startswith("a stack of 3 Z planes: ")
        assert note in source.notes[0]


def test_a_huge_stack_s_sharpest_plane_is_judged_on_a_central_window(tmp_path, monkeypatch):
    write_focus_stack(tmp_path / "stack.tif", "OME ZYX, tiled")
    monkeypatch.setattr(blocks, "FOCUS_WINDOW", 128)
    with TiffSource(tmp_path / "stack.tif", plane=PlaneRequest("focus")) as source:
        assert source.notes == ["a stack of 3 Z planes: plane 1, the sharpest (judged on its central 128x128 px), "
                                "is segmented"]


def test_a_huge_stack_notes_its_time_points_as_the_whole_reader_does(tmp_path):
    path = tmp_path / "tz.ome.tif"
    pixels = (np.arange(2 * 3 * 40 * 50) % 7).reshape(2, 3, 40, 50).astype(np.uint8)   # not one value (its own note)
    tifffile.imwrite(path, pixels, ome=True, tile=(16, 16), metadata={"axes": "TZYX"})
    for plane in (PlaneRequest(), PlaneRequest("max")):
        read_channels(path, notes=(whole := []), plane=plane)
        with TiffSource(path, plane=plane) as source:
            assert source.notes == whole and len(whole) == (1 if plane.z is None else 2), whole
            assert "2 time points" in whole[-1]


def test_a_z_plane_past_the_stack_is_refused_with_its_count(tmp_path):
    write_focus_stack(tmp_path / "stack.tif", "OME ZYX, tiled")
    with pytest.raises(ImageReadError, match=r"stack.tif: the stack has 3 Z planes \(0 to 2\): --z-plane 3 is past"):
        TiffSource(tmp_path / "stack.tif", plane=PlaneRequest(3))


def test_needs_blocks_only_for_tiffs_over_the_limits(tmp_path):
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((100, 120), np.uint8), tile=(64, 64))
    Image.fromarray(np.zeros((100, 120), np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    assert not needs_blocks(tmp_path / "small.tif")
    assert needs_blocks(tmp_path / "small.tif", ReadLimits(max_pixels=10_000))
    assert needs_blocks(tmp_path / "small.tif", ReadLimits(max_file_bytes=100))
    assert not needs_blocks(tmp_path / "small.png", ReadLimits(max_pixels=10_000))  # imageio refuses it
    assert not needs_blocks(tmp_path / "broken.tif", ReadLimits(max_pixels=10))     # imageio says why
    assert not needs_blocks(tmp_path / "missing.tif")


def test_a_tiff_in_pieces_too_large_for_a_block_is_refused_with_what_to_do(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "strip.tif", np.zeros((300, 400), np.uint8), compression="zlib", rowsperstrip=300)
    monkeypatch.setattr(blocks, "MAX_CHUNK_BYTES", 50_000)
    with pytest.raises(ImageReadError, match="strip.tif.*tiled TIFF"):
        TiffSource(tmp_path / "strip.tif")


def test_a_truncated_tiff_is_reported_with_its_name(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 255, (600, 600), np.uint8), tile=(64, 64),
                     compression="zlib")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="cut.tif.*damaged or truncated"):
        with TiffSource(path) as source:
            blocks.survey(source)


# ---------------------------------------------------------------------------------------
# Outputs


def test_label_tiff_is_tiled_and_streamed_from_disk(tmp_path):
    labels = disks_on_borders((1100, 700), 256, seed=4)
    sink = DiskSink(tmp_path / "labels.u32", 1100, 700)
    sink.write(0, 0, labels[:600])
    sink.write(600, 0, labels[600:])
    assert np.array_equal(sink.read(100, 900, 50, 650), labels[100:900, 50:650])
    assert np.array_equal(strided_labels(sink, 1100, 700, 3), labels[::3, ::3])
    path = write_label_tiff(tmp_path / "x_labels.tif", sink, 1100, 700, int(labels.max()))
    sink.close()
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert page.is_tiled and page.dtype == np.uint16 and (page.tilelength, page.tilewidth) == (512, 512)
        assert np.array_equal(page.asarray(), labels)
    assert not list(tmp_path.glob("*.partial"))
    assert label_dtype(65535) == np.uint16 and label_dtype(65536) == np.uint32


# ---------------------------------------------------------------------------------------
# The network path against the whole-image pipeline


@pytest.fixture(scope="module")
def field_tiff(tmp_path_factory):
    path = tmp_path_factory.mktemp("field") / "field.tif"
    return write_field_tiff(path, NucleusField(diameter=22.0), 1200, 1100, tile=256)


def test_block_wise_segmentation_of_a_tiff_matches_the_whole_image(bundled_model, field_tiff, tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "OVERVIEW_SIDE", 500)  # so that the overlay is downsampled
    whole = segment(bundled_model, read_channels(field_tiff))
    result = segment_in_blocks(bundled_model, field_tiff, tmp_path, "field", block_size=400)
    # The scale found as the whole image's is: estimated on the same crop, checked on all nuclei.
    assert result.diameter_source == whole.prediction.diameter_source
    assert result.diameter == pytest.approx(whole.prediction.diameter, rel=1e-3)
    assert result.blocks == 9
    assert abs(result.count - whole.count) <= 0.005 * whole.count
    labels = tifffile.imread(result.files["labels"])
    matched, mean_iou = matched_iou(whole.labels, labels)
    assert matched >= 0.99 * whole.count and mean_iou >= 0.98
    # The files: a tiled 16-bit label TIFF with the table's ids, a downsampled overlay.
    with tifffile.TiffFile(result.files["labels"]) as tif:
        assert tif.pages.first.is_tiled and tif.pages.first.dtype == np.uint16
    assert np.array_equal(np.unique(labels)[1:], result.table["nucleus"].to_numpy())
    assert labels.shape == (1200, 1100) and result.count == labels.max()
    with Image.open(result.files["overlay"]) as overlay:
        assert overlay.size == (367, 400)  # every third pixel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["field_labels.tif", "field_overlay.png"]  # no scratch left


def test_block_wise_segmentation_in_memory_with_a_given_diameter(bundled_model):
    image = NucleusField(diameter=18.0, seed=5).render(0, 700, 0, 650).astype(np.float32)[..., None] / 255
    whole = segment(bundled_model, image, diameter=18.0)
    result = segment_array_in_blocks(bundled_model, image, diameter=18.0, block_size=256)
    assert result.diameter_source == "given" and result.labels.dtype == np.int32
    matched, mean_iou = matched_iou(whole.labels, result.labels)
    assert abs(result.count - whole.count) <= max(1, 0.005 * whole.count)
    assert mean_iou >= 0.98


def test_block_wise_diameter_is_estimated_where_the_nuclei_are(bundled_model, monkeypatch):
    # Nuclei in one corner only: the centre window (the estimator's 1024 px crop) is background.
    field = NucleusField(diameter=18.0, seed=3).render(0, 300, 0, 300).astype(np.float32) / 255
    image = np.zeros((1600, 1600), np.float32)
    image[:300, :300] = field
    seen = []

    def estimate(window):
        seen.append(window)
        return estimate_diameter(window)

    monkeypatch.setattr(blocks, "estimate_diameter", estimate)
    result = segment_array_in_blocks(bundled_model, image[..., None], block_size=1024)
    (window,) = seen
    bright = (window.mean(axis=-1) > 0.5).sum()
    assert window.shape[:2] == (300, 300) and bright > 0.2 * 300 * 300, bright   # the corner's field, its canvas left out
    assert abs(math.log(result.diameter / 18.0)) < math.log(1.3)


@pytest.mark.parametrize("arguments, message", [(dict(channel=3), "channel 3"), (dict(block_size=10), "block size"),
                                                (dict(diameter=-4.0), "diameter")])
def test_bad_arguments_are_refused_before_any_work(bundled_model, arguments, message, monkeypatch):
    monkeypatch.setattr(blocks, "survey", None)  # a pass over a huge image would come first otherwise
    with pytest.raises(ValueError, match=message):
        segment_array_in_blocks(bundled_model, np.zeros((100, 100, 2), np.float32), **arguments)


def test_an_upload_with_many_bytes_of_pixels_is_read_lazily_even_under_the_pixel_limit(tmp_path, monkeypatch):
    """A small-area TIFF whose decoded pixels exceed blocks.MAX_STORED_BYTES (float64 stacks)
    is read window by window, not decoded whole; a light one is decoded as stored."""
    import io

    from nuclei_app import blocks

    stack = np.random.default_rng(0).random((64, 80, 3))  # float64: 122,880 bytes
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, stack, photometric="rgb")
    data = buffer.getvalue()
    with blocks.upload_source(data, "light.tif", tmp_path) as source:
        assert isinstance(source, ArraySource)
    monkeypatch.setattr(blocks, "MAX_STORED_BYTES", 100_000)
    with blocks.upload_source(data, "heavy.tif", tmp_path) as source:
        assert isinstance(source, TiffSource) and (source.height, source.width, source.channels) == (64, 80, 3)
    assert not list(tmp_path.iterdir())  # the upload's copy is removed afterwards


def test_a_block_wise_result_notes_an_automatic_diameter_under_what_the_model_resolves(bundled_model):
    """The note every route gives an empty field, carried by the result itself (batch, Dask
    and the app's large-image route read it from there)."""
    noise = np.random.default_rng(0).random((96, 96)).astype(np.float32) * 0.15
    result = segment_array_in_blocks(bundled_model, noise, block_size=256)
    assert result.diameter < 4 and any("noise on an empty field" in note for note in result.notes), result.notes
    given = segment_array_in_blocks(bundled_model, noise, diameter=18.0, block_size=256)
    assert not any("empty field" in note for note in given.notes)


# ---------------------------------------------------------------------------------------
# A field of view pasted onto a blank canvas


def on_canvas(field: np.ndarray, shape: tuple[int, int], at: tuple[int, int], fill: float) -> np.ndarray:
    canvas = np.full(shape + field.shape[2:], fill, np.float32)
    canvas[at[0]:at[0] + field.shape[0], at[1]:at[1] + field.shape[1]] = field
    return canvas


def test_the_survey_finds_the_field_as_the_whole_image_reader_does():
    field = read_channels(SAMPLES / "images" / "tissue_he.png")
    image = on_canvas(field, (1500, 1300), (700, 90), 0.0)
    overview = blocks.survey(ArraySource(image))
    assert overview.content == content_box(image) == Box(700, 700 + field.shape[0], 90, 90 + field.shape[1])


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_a_light_field_on_a_canvas_is_segmented_block_wise_as_alone(bundled_model, tmp_path, fill):
    """Block by block, a brightfield field on black was read as fluorescence and segmented at
    the canvas's scale; now the blocks see the field as the whole image route does, and the
    blocks on the canvas alone hold no nuclei."""
    field = read_channels(SAMPLES / "images" / "brightfield.png")
    alone = segment(bundled_model, field)
    image = on_canvas(field, (1100, 900), (500, 300), fill)
    path = tmp_path / "canvas.tif"
    tifffile.imwrite(path, (image * 255).round().astype(np.uint8), tile=(256, 256), photometric="rgb")
    result = segment_in_blocks(bundled_model, path, tmp_path, "canvas", block_size=256)
    assert result.diameter == pytest.approx(alone.prediction.diameter, rel=1e-3)
    labels = tifffile.imread(result.files["labels"])
    inside = labels[500:500 + field.shape[0], 300:300 + field.shape[1]]
    assert labels.max() == inside.max() and abs(result.count - alone.count) <= 1
    matched, mean_iou = matched_iou(alone.labels, inside)
    assert matched >= alone.count - 1 and mean_iou >= 0.98
