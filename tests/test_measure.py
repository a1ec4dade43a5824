import numpy as np
import pytest

from nuclei_app.canvas import Box
from nuclei_app.measure import COLUMNS, channel_intensities, measure_nuclei, summary


def test_square_nucleus_measurements():
    labels = np.zeros((50, 60), np.int32)
    labels[10:20, 30:40] = 1          # 100 px square, centre (14.5, 34.5)
    labels[0:5, 0:8] = 2              # touches the border
    image = np.zeros((50, 60, 3), np.float32)
    image[10:20, 30:40] = 0.5
    table = measure_nuclei(labels, image)
    assert list(table.columns) == COLUMNS
    first = table.iloc[0]
    assert first["nucleus"] == 1 and first["area_px"] == 100
    assert (first["centroid_y"], first["centroid_x"]) == pytest.approx((14.5, 34.5))
    assert first["mean_intensity"] == pytest.approx(0.5) and first["integrated_intensity"] == pytest.approx(50.0)
    assert not first["touches_border"] and table.iloc[1]["touches_border"]
    assert 0.5 < first["circularity"] <= 1.0


def test_a_nucleus_cut_by_the_edge_of_a_field_on_a_canvas_touches_its_border():
    labels = np.zeros((50, 60), np.int32)
    labels[10:20, 30:40] = 1          # cut by the field's top edge (row 10)
    labels[25:30, 25:30] = 2          # inside
    labels[0:5, 0:8] = 3              # on the canvas: touches the image's edge only
    image = np.zeros((50, 60), np.float32)
    flags = measure_nuclei(labels, image, Box(10, 40, 5, 55))["touches_border"].tolist()
    assert flags == [True, False, False]
    assert measure_nuclei(labels, image)["touches_border"].tolist() == [False, False, True]
    # A window of the image (block by block): the field's edges beyond it are the window's.
    window = labels[15:50, 20:45]
    flags = measure_nuclei(window, image[15:50, 20:45], Box(10, 40, 5, 55).shifted(-15, -20))["touches_border"]
    assert flags.tolist() == [True, False]      # nucleus 1's part meets the window's top edge


def test_no_nuclei_gives_empty_table_with_columns():
    table = measure_nuclei(np.zeros((10, 10), np.int32), np.zeros((10, 10, 3), np.float32))
    assert len(table) == 0 and list(table.columns) == COLUMNS
    stats = summary(table, 100)
    assert stats["count"] == 0 and stats["coverage"] == 0 and np.isnan(stats["mean_area"])


def test_summary_counts_and_coverage():
    labels = np.zeros((10, 10), np.int32)
    labels[0:2, 0:2] = 1
    labels[5:9, 5:9] = 2
    stats = summary(measure_nuclei(labels, np.zeros((10, 10, 3), np.float32)), labels.size)
    assert stats["count"] == 2 and stats["coverage"] == pytest.approx(0.2)
    assert stats["mean_area"] == pytest.approx(10.0) and stats["median_area"] == pytest.approx(10.0)


def test_shape_moments_are_regionprops_and_do_not_depend_on_where_a_nucleus_lies():
    from skimage.measure import regionprops_table

    from .conftest import synthetic_labels

    labels = synthetic_labels((120, 140), seed=3, count=12)
    labels[5:15, 100:110] = labels.max() + 1            # a square: symmetric, orientation by convention
    labels[30:34, 60:80] = labels.max() + 1             # an elongated bar
    table = measure_nuclei(labels, np.zeros(labels.shape, np.float32))
    expected = regionprops_table(labels, properties=["major_axis_length", "minor_axis_length", "eccentricity",
                                                     "orientation"])
    for mine, theirs in (("major_axis_px", "major_axis_length"), ("minor_axis_px", "minor_axis_length"),
                         ("eccentricity", "eccentricity"), ("orientation_rad", "orientation")):
        np.testing.assert_allclose(table[mine], expected[theirs], atol=1e-9)
    far = np.zeros((120 + 9000, 140 + 9000), labels.dtype)
    far[9000:, 9000:] = labels                           # the same nuclei 9000 px from the origin
    moved = measure_nuclei(far, np.zeros(far.shape, np.float32))
    columns = ["major_axis_px", "minor_axis_px", "eccentricity", "orientation_rad"]
    np.testing.assert_allclose(moved[columns].to_numpy(float), table[columns].to_numpy(float), atol=1e-9)


def test_every_column_is_regionprops_own():
    """Nuclei touching each other and the image's edges, one with a hole, ids with gaps."""
    from skimage.measure import regionprops_table

    from .conftest import synthetic_labels

    labels = synthetic_labels((120, 140), seed=5, count=14) * 3     # ids 3, 6, 9, ...: gaps
    labels[0:12, 0:9] = 50                                            # in a corner
    labels[60:75, 130:140] = 51                                       # on the right edge
    labels[90:110, 20:40] = 52
    labels[97:103, 27:33] = 0                                         # a hole
    labels[40, 60:70] = 53                                            # one pixel thin
    intensity = np.random.default_rng(0).random(labels.shape).astype(np.float32)
    table = measure_nuclei(labels, intensity)
    expected = regionprops_table(labels, intensity_image=intensity, properties=[
        "label", "area", "centroid", "perimeter", "equivalent_diameter_area", "solidity", "intensity_mean",
        "intensity_max"])
    for mine, theirs in (("nucleus", "label"), ("area_px", "area"), ("centroid_y", "centroid-0"),
                         ("centroid_x", "centroid-1"), ("perimeter_px", "perimeter"),
                         ("diameter_px", "equivalent_diameter_area"), ("solidity", "solidity"),
                         ("mean_intensity", "intensity_mean"), ("max_intensity", "intensity_max")):
        np.testing.assert_allclose(table[mine].to_numpy(float), expected[theirs], rtol=1e-6, err_msg=mine)
    np.testing.assert_allclose(table["integrated_intensity"], expected["intensity_mean"] * expected["area"], rtol=1e-6)


def test_solidity_is_regionprops_own_on_many_shapes():
    """Ellipses at every angle, lines, single pixels and labels in scattered pieces: the convex
    hull counted from each row's extreme pixels equals ``convex_hull_image``'s pixel count."""
    from skimage.measure import regionprops_table

    rng = np.random.default_rng(11)
    for trial in range(60):
        height, width = (int(v) for v in rng.integers(5, 70, 2))
        labels = np.zeros((height, width), np.int32)
        if trial % 2:   # pieces of three labels scattered over the image
            labels = (rng.integers(0, 4, (height, width)) * (rng.random((height, width)) < 0.3)).astype(np.int32)
        else:
            rows, columns = np.ogrid[:height, :width]
            for label in range(1, 6):
                centre, (long, short), angle = rng.integers(0, (height, width)), rng.uniform(0.5, 14, 2), rng.uniform(0, np.pi)
                dy, dx = rows - centre[0], columns - centre[1]
                along, across = dy * np.cos(angle) + dx * np.sin(angle), -dy * np.sin(angle) + dx * np.cos(angle)
                labels[(along / long) ** 2 + (across / short) ** 2 <= 1] = label
        if labels.max() == 0:
            continue
        table = measure_nuclei(labels, np.zeros(labels.shape, np.float32))
        expected = regionprops_table(labels, properties=["solidity"])["solidity"]
        np.testing.assert_allclose(table["solidity"].to_numpy(float), expected, rtol=1e-12, err_msg=f"trial {trial}")


def test_solidity_of_an_object_taller_than_one_chunk_of_rows():
    """A tilted ellipse 700 rows tall and a crescent: the hull is counted in chunks of rows."""
    from skimage.measure import regionprops_table

    rows, columns = np.ogrid[:760, :300]
    dy, dx = rows - 380, columns - 150
    labels = np.zeros((760, 300), np.int32)
    labels[((dy * 0.9 + dx * 0.4) / 350) ** 2 + ((-dy * 0.4 + dx * 0.9) / 60) ** 2 <= 1] = 1
    labels[(np.hypot(dy, dx - 100) < 120) & (np.hypot(dy, dx - 60) > 110)] = 2
    table = measure_nuclei(labels, np.zeros(labels.shape, np.float32))
    expected = regionprops_table(labels, properties=["solidity"])["solidity"]
    np.testing.assert_allclose(table["solidity"].to_numpy(float), expected, rtol=1e-12)


def test_every_channel_s_intensity_per_nucleus_is_regionprops_own():
    from skimage.measure import regionprops_table

    from .conftest import synthetic_labels

    labels = synthetic_labels((80, 90), seed=2, count=9) * 2          # ids with gaps
    channels = np.random.default_rng(1).random((80, 90, 3)).astype(np.float32)
    table = channel_intensities(labels, channels)
    assert list(table.columns) == ["nucleus"] + [f"{stat}_c{c}" for c in range(3)
                                                 for stat in ("mean", "max", "integrated")]
    for c in range(3):
        expected = regionprops_table(labels, intensity_image=channels[..., c],
                                     properties=["label", "area", "intensity_mean", "intensity_max"])
        np.testing.assert_array_equal(table["nucleus"], expected["label"])
        np.testing.assert_allclose(table[f"mean_c{c}"], expected["intensity_mean"], rtol=1e-6)
        np.testing.assert_allclose(table[f"max_c{c}"], expected["intensity_max"], rtol=1e-6)
        np.testing.assert_allclose(table[f"integrated_c{c}"], expected["intensity_mean"] * expected["area"], rtol=1e-6)
    grey = channel_intensities(labels, channels[..., 0])
    assert list(grey.columns) == ["nucleus", "mean_c0", "max_c0", "integrated_c0"]
    assert list(channel_intensities(np.zeros_like(labels), channels).columns) == list(table.columns)
