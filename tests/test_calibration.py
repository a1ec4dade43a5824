"""The pixel size: read from the files microscopes write, given by the user, used for µm columns."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from nuclei_app.calibration import (UM_COLUMNS, PixelSize, check_given, pixel_size_for, read_pixel_size,
                                    tiff_resolution, with_physical_sizes, with_resolution)
from nuclei_app.measure import COLUMNS, measure_nuclei

PIXELS = np.zeros((24, 32), np.uint16)


def tiff(**options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, PIXELS, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("options, um, source", [
    (dict(ome=True, metadata={"PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325}), 0.325, "OME-TIFF metadata"),
    (dict(ome=True, metadata={"PhysicalSizeX": 162.5, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 162.5,
                              "PhysicalSizeYUnit": "nm"}), 0.1625, "OME-TIFF metadata"),
    (dict(imagej=True, resolution=(1 / 0.65, 1 / 0.65), metadata={"unit": "micron"}), 0.65, "ImageJ metadata"),
    (dict(imagej=True, resolution=(1 / 0.108, 1 / 0.108), metadata={"unit": "um"}), 0.108, "ImageJ metadata"),
    (dict(imagej=True, resolution=(1 / 0.0004, 1 / 0.0004), metadata={"unit": "mm"}), 0.4, "ImageJ metadata"),
    (dict(resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER"), 0.5, "TIFF resolution"),
    (dict(resolution=(1e3 / 0.2, 1e3 / 0.2), resolutionunit="MILLIMETER"), 0.2, "TIFF resolution"),
    (dict(resolution=(1 / 0.8, 1 / 0.8), resolutionunit="MICROMETER"), 0.8, "TIFF resolution"),
    (dict(resolution=(50800, 50800), resolutionunit="INCH"), 0.5, "TIFF resolution"),   # only a microscope's dpi
    (dict(description="Aperio Image Library v12.0.15\r\n46000x32914 (256x256) JPEG/RGB Q=70|AppMag = 20|"
                      "MPP = 0.4990|Filename = slide"), 0.499, "Aperio metadata"),
])
def test_the_pixel_size_microscope_software_writes_is_read(options, um, source):
    reading = read_pixel_size(tiff(**options))
    assert reading.size is not None and reading.problem == ""
    assert reading.size.um == pytest.approx(um, rel=1e-6)
    assert reading.size.source == source


@pytest.mark.parametrize("options", [
    {},                                                                  # no resolution at all
    dict(resolution=(72, 72), resolutionunit="INCH"),                    # a graphics program's dpi
    dict(resolution=(300, 300), resolutionunit="INCH"),
    dict(resolution=(4800, 4800), resolutionunit="INCH"),                # a film scanner's (5.3 µm)
    dict(resolution=(1, 1), resolutionunit="CENTIMETER"),                # writers' placeholder
    dict(imagej=True, metadata={"unit": "pixel"}, resolution=(2, 2)),    # ImageJ uncalibrated
    dict(imagej=True),
])
def test_print_resolutions_and_placeholders_are_no_calibration(options):
    assert read_pixel_size(tiff(**options)).size is None
    assert read_pixel_size(tiff(**options)).problem == ""


def test_a_size_no_microscope_has_or_non_square_pixels_are_refused_with_a_reason():
    cm_at_72_dpi = read_pixel_size(tiff(resolution=(28.35, 28.35), resolutionunit="CENTIMETER"))
    problem = cm_at_72_dpi.problem
    assert cm_at_72_dpi.size is None and "not a microscope's" in problem and "352.7 µm" in problem
    assert "give the right size (--pixel-size UM)" in problem   # what to do
    oblong = read_pixel_size(tiff(ome=True, metadata={"PhysicalSizeX": 0.2, "PhysicalSizeY": 0.4}))
    assert oblong.size is None and "pixels of 0.2 x 0.4 µm (OME-TIFF metadata), not square" in oblong.problem
    # One size for both sides would be wrong there (user test): the advice is to resample.
    assert "--pixel-size" not in oblong.problem and "resample the image to square pixels" in oblong.problem


def test_png_jpeg_and_damaged_files_have_no_pixel_size_and_never_raise(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG", dpi=(300, 300))
    assert read_pixel_size(buffer.getvalue()).size is None
    truncated = tiff(ome=True, metadata={"PhysicalSizeX": 0.3})[:40]
    assert read_pixel_size(truncated).size is None
    assert read_pixel_size(tmp_path / "missing.tif").size is None
    path = tmp_path / "cells.ome.tif"
    path.write_bytes(tiff(ome=True, metadata={"PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3}))
    assert read_pixel_size(path).size == PixelSize(0.3, "OME-TIFF metadata")  # from a path too


def test_a_size_given_wins_and_a_different_one_in_the_file_is_noted():
    data = tiff(ome=True, metadata={"PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325})
    notes: list[str] = []
    assert pixel_size_for(data, 0.65, notes) == PixelSize(0.65, "given")
    assert notes == ["the pixel size given, 0.65 µm, is used; the file says 0.325 µm per pixel (OME-TIFF metadata)"]
    notes = []
    assert pixel_size_for(data, 0.325, notes) == PixelSize(0.325, "given") and notes == []
    assert pixel_size_for(data, None, notes) == PixelSize(0.325, "OME-TIFF metadata") and notes == []
    assert pixel_size_for(tiff(), None, notes) is None and notes == []
    pixel_size_for(tiff(resolution=(28.35, 28.35), resolutionunit="CENTIMETER"), None, notes)
    assert len(notes) == 1 and "not a microscope's" in notes[0]
    notes = []   # a size given over a file's unusable one is noted too (user test: it went by silently)
    oblong = tiff(ome=True, metadata={"PhysicalSizeX": 0.3, "PhysicalSizeY": 0.6})
    assert pixel_size_for(oblong, 0.325, notes) == PixelSize(0.325, "given")
    assert notes == ["the pixel size given, 0.325 µm, is used; the file says pixels of 0.3 x 0.6 µm (OME-TIFF "
                     "metadata), not square"]


@pytest.mark.parametrize("value", [0.0, -1.0, 51.0, math.nan, math.inf])
def test_a_given_size_outside_a_microscopes_range_is_refused(value):
    with pytest.raises(ValueError, match="side of one pixel in µm, between 0.005 and 50"):
        check_given(value)


def test_label_tiff_resolution_reads_back_as_the_same_pixel_size():
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, PIXELS, **tiff_resolution(PixelSize(0.325, "given")))
    assert read_pixel_size(buffer.getvalue()).size.um == pytest.approx(0.325, rel=1e-6)
    assert tiff_resolution(None) == {}


def test_a_written_tiff_s_resolution_is_set_without_touching_its_pixels():
    labels = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels, tile=(16, 16), compression="zlib", **tiff_resolution(PixelSize(0.2, "x")))
    retagged = with_resolution(buffer.getvalue(), PixelSize(0.4, "given"))
    assert len(retagged) == len(buffer.getvalue())
    assert read_pixel_size(retagged).size.um == pytest.approx(0.4)
    assert np.array_equal(tifffile.imread(io.BytesIO(retagged)), labels)
    assert read_pixel_size(with_resolution(retagged, None)).size is None


def test_um_columns_scale_lengths_once_and_areas_twice():
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:25] = 1     # 10 x 20 px rectangle
    labels[25:35, 25:35] = 2   # 10 x 10 px square
    table = measure_nuclei(labels, np.ones((40, 40), np.float32))
    um = with_physical_sizes(table, PixelSize(0.5, "given"))
    assert list(um.columns) == COLUMNS + UM_COLUMNS
    assert um["area_um2"].tolist() == pytest.approx([200 * 0.25, 100 * 0.25])
    for length in ("perimeter", "diameter", "major_axis", "minor_axis"):
        assert um[f"{length}_um"].tolist() == pytest.approx((table[f"{length}_px"] * 0.5).tolist())
    assert um["centroid_x_um"].tolist() == pytest.approx([14.5 * 0.5, 29.5 * 0.5])
    unknown = with_physical_sizes(table, None)
    assert list(unknown.columns) == COLUMNS + UM_COLUMNS and unknown[UM_COLUMNS].isna().all().all()
    empty = with_physical_sizes(pd.DataFrame(columns=COLUMNS), PixelSize(0.5, "given"))
    assert list(empty.columns) == COLUMNS + UM_COLUMNS and len(empty) == 0
