import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nuclei_app.results import (combined_measurements, csv_bytes, image_result_files, output_stem, safe_name,
                                unique_names, unquoted, zip_bytes)

from .conftest import synthetic_labels


def test_names_lose_paths_and_what_file_systems_refuse():
    assert safe_name("..\\..\\evil") == "evil" and safe_name("../../etc/passwd") == "passwd"
    assert safe_name('a<b>:c"d|e?f*g\x00h') == "a_b_c_d_e_f_g_h" and safe_name(".hidden") == "hidden"
    assert safe_name("...") == "image" and len(output_stem("a" * 500 + ".png")) == 100
    # Windows can't create a file named after a device, whatever its extension.
    assert [safe_name(n) for n in ("con", "NUL.x", "com1", "lpt9 ", "console")] == ["con_", "NUL.x_", "com1_",
                                                                                  "lpt9 _", "console"]


def test_names_are_the_cli_s_for_the_same_file():
    """A user test: the app named 'Zellkern µ 1.tif' 'Zellkern_µ_1', the CLI 'Zellkern µ 1', so a
    ZIP's CSVs and a batch run's did not join on ``image``. A review: '_DSC0001.JPG', '-ctrl',
    macOS's decomposed accents and long names in a three-byte script differed too."""
    from nuclei_app.inputs import output_names

    files = ["Zellkern µ 1.tif", "noyaux été 1.png", "plate A01 (2).ome.tif", "核 1.png", "_DSC0001.JPG",
             "-ctrl.tif", "=A1.png", "noyaux e\u0301te\u0301.png", "核" * 100 + ".png", "notes. .tif", "con.tif"]
    for file in files:
        (cli_name,) = output_names([Path(file)]).values()
        assert output_stem(file) == cli_name, file
        assert len((cli_name + "._measurements.csv.partial").encode()) <= 255, file


def test_repeated_names_get_numbers_case_insensitively():
    assert unique_names(["cells.png", "cells.tif", "Cells.png", "cells_2.png"]) == ["cells", "cells_2", "Cells_3",
                                                                                   "cells_2_2"]


def test_formulas_are_quoted_in_every_csv():
    table = pd.DataFrame({"image": ["=1+1", "+cmd", "-x", "@sum", "plain"], "area_px": [1, 2, 3, 4, 5]})
    read = pd.read_csv(io.BytesIO(csv_bytes(table)))
    assert list(read["image"]) == ["'=1+1", "'+cmd", "'-x", "'@sum", "plain"]
    assert list(read["area_px"]) == [1, 2, 3, 4, 5]  # numbers (negative ones too) untouched
    combined = pd.read_csv(io.BytesIO(combined_measurements({"=a": table[["area_px"]]})))
    assert set(combined["image"]) == {"'=a"}


def test_formula_quoting_leaves_missing_and_other_cells_as_they_were():
    """Each distinct value is tested once: repeats, NaN, None and non-text cells (a list:
    unhashable) come out as the per-cell test wrote them."""
    table = pd.DataFrame({"image": ["=a", "=a", "b", None, np.nan, "=a"], "notes": ["x", ["=y"], "-z", "", "x", "x"]})
    assert csv_bytes(table).decode().splitlines() == [
        "image,notes", "'=a,x", "'=a,['=y']", "b,'-z", ",", ",x", "'=a,x"]
    names = pd.Series(["=a", "b"] * 3, dtype="string")
    assert list(pd.read_csv(io.BytesIO(csv_bytes(pd.DataFrame({"image": names}))))["image"]) == ["'=a", "b"] * 3


def test_quoted_cells_read_back_as_written():
    names = pd.Series(["=1+1", "-ctrl", "plain", "'quoted", "@x"])
    read = pd.read_csv(io.BytesIO(csv_bytes(pd.DataFrame({"image": names}))), dtype=str)
    assert list(unquoted(read["image"])) == list(names)


def test_positions_far_into_a_whole_slide_keep_their_sub_pixel_digits():
    table = pd.DataFrame({"centroid_x": [49999.53, 11012.25], "area_px": [9999999.0, 3.0], "mean_intensity": [0.1234567, 1e-5]})
    read = pd.read_csv(io.BytesIO(csv_bytes(table)))
    assert np.allclose(read["centroid_x"], table["centroid_x"], atol=0.005, rtol=0)
    assert list(read["area_px"]) == [9999999.0, 3.0]
    assert np.allclose(read["mean_intensity"], table["mean_intensity"], rtol=1e-6)


def test_one_images_files_and_a_reproducible_zip():
    labels = synthetic_labels()
    table = pd.DataFrame({"nucleus": [1], "area_px": [10.0]})
    overlay = np.zeros(labels.shape + (3,), np.float32)
    files = image_result_files("cells", labels, overlay, table, ("png", "tiff", "rois", "geojson"))
    assert sorted(files) == sorted(["cells_labels.png", "cells_mask.png", "cells_overlay.png",
                                    "cells_measurements.csv", "cells_labels.tif", "cells_rois.zip", "cells.geojson"])
    assert "cells_measurements.csv" not in image_result_files("cells", labels, overlay, table, measurements=False)
    # The image's own CSV is its rows of a run's measurements.csv: put together, they concatenate.
    combined = combined_measurements({"cells": table, "more cells": table})
    assert files["cells_measurements.csv"].startswith(b"image,nucleus,area_px\n")
    assert combined.startswith(files["cells_measurements.csv"])
    archive = zip_bytes(files)
    assert archive == zip_bytes(files)  # no timestamps: same files, same bytes
    assert zipfile.ZipFile(io.BytesIO(archive)).read("cells_labels.tif") == files["cells_labels.tif"]


@pytest.mark.parametrize("file_name, stem", [("plate.ome.tif", "plate"), ("plate.OME.TIFF", "plate"),
                                             ("plate.tif", "plate"), ("a.ome.png", "a.ome"), (".ome.tif", ".ome"),
                                             ("x.y.tif", "x.y")])
def test_outputs_are_named_without_an_ome_tiff_s_ome(file_name, stem):
    from nuclei_app.results import image_stem

    assert image_stem(file_name) == stem
