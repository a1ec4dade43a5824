import numpy as np
import pandas as pd

from nuclei_app.figures import area_histogram, overlay_figure

from .conftest import synthetic_labels


def table_for(labels):
    from nuclei_app.measure import measure_nuclei

    return measure_nuclei(labels, np.zeros(labels.shape + (3,), np.float32))


def test_overlay_figure_keeps_image_coordinates_when_subsampled():
    labels = synthetic_labels((96, 96))
    table = table_for(labels)
    overlay = np.zeros((96, 96, 3), np.float32)
    full = overlay_figure(overlay, table)
    strided = overlay_figure(overlay[::4, ::4], table, step=4)
    assert strided.data[0].z.shape[:2] == (24, 24) and strided.data[0].dx == 4
    for figure in (full, strided):
        assert list(figure.layout.xaxis.range) == [0, 96] and list(figure.layout.yaxis.range) == [96, 0]
        hover = figure.data[1]
        np.testing.assert_allclose(hover.x, table["centroid_x"])  # markers in the image's own pixels
        assert len(hover.customdata) == len(table)


def test_hover_gives_areas_in_um2_where_the_pixel_size_is_known():
    """A user test: the card and the histogram said µm², the hover px only."""
    from nuclei_app.calibration import PixelSize, with_physical_sizes

    table = table_for(synthetic_labels((96, 96)))
    plain = overlay_figure(np.zeros((96, 96, 3), np.float32), table).data[1]
    assert "px" in plain.hovertemplate and "µm²" not in plain.hovertemplate
    calibrated = with_physical_sizes(table, PixelSize(0.5, "given"))
    hover = overlay_figure(np.zeros((96, 96, 3), np.float32), calibrated).data[1]
    assert "µm²" in hover.hovertemplate
    np.testing.assert_allclose(hover.customdata[:, 1], table["area_px"] * 0.25)


def test_a_strip_opens_zoomed_on_its_start_at_full_resolution():
    """A user test: a 5000x20 strip was shown whole, a line 3 px thick."""
    from nuclei_app.overlay import display_stride, view_stride

    labels = np.zeros((20, 5000), np.int32)
    labels[4:16, 100:112] = 1
    assert view_stride(labels.shape, 1600) == 1 < display_stride(labels.shape, 1600)  # its 20 px stay 20
    assert view_stride((20, 50_000), 1600) == 3 and view_stride((2000, 3000), 1600) == 2  # MAX_SENT_SIDE; no strip
    figure = overlay_figure(np.zeros((20, 5000, 3), np.float32), table_for(labels))
    assert list(figure.layout.xaxis.range) == [0, 160] and list(figure.layout.yaxis.range) == [20, 0]
    assert figure.layout.height < 620 and figure.data[0].z.shape[:2] == (20, 5000)  # the rest is panned to
    tall = overlay_figure(np.zeros((5000, 20, 3), np.float32), table_for(labels.T))
    assert list(tall.layout.yaxis.range) == [160, 0] and list(tall.layout.xaxis.range) == [0, 20]
    opened = overlay_figure(np.zeros((20, 5000, 3), np.float32), table_for(labels), start=976)
    assert list(opened.layout.xaxis.range) == [976, 1136] and list(opened.layout.yaxis.range) == [20, 0]
    # Subsampled by 3, a 20x50000 strip is 7 px tall: the window is the image's 20 px, not 21.
    long = overlay_figure(np.zeros((7, 16667, 3), np.float32), table_for(labels), step=3, shape=(20, 50_000))
    assert list(long.layout.xaxis.range) == [0, 160] and list(long.layout.yaxis.range) == [20, 0]


def test_figures_without_nuclei_and_the_histogram():
    empty = overlay_figure(np.zeros((10, 10, 3), np.float32), pd.DataFrame(columns=["centroid_x"]))
    assert len(empty.data) == 1  # the image only, no hover layer
    histogram = area_histogram(pd.DataFrame({"area_px": [10, 20, 20, 40]}))
    assert list(histogram.data[0].x) == [10, 20, 20, 40]
