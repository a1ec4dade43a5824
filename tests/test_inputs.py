"""The images a run is given: folders searched (links, loops, hidden files, undecodable
names) and each image's output NAME, unique without case and within a file name's bytes."""
import os
import sys

import pytest

from nuclei_app.inputs import collect_images, output_names

from .test_batch import write_image


def test_collects_recursively_and_reports_missing(tmp_path):
    write_image(tmp_path / "a" / "one.png")
    write_image(tmp_path / "a" / "deeper" / "two.tif")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    found, problems = collect_images([tmp_path / "a", tmp_path / "missing.png"])
    assert [p.name for p in found] == ["two.tif", "one.png"] or [p.name for p in found] == ["one.png", "two.tif"]
    assert problems == [(str(tmp_path / "missing.png"), "no such file or folder")]


def test_results_folders_inside_the_data_are_passed_over_and_empty_folders_told(tmp_path, tiny_model):
    """A trial: results kept beside the data (data/results/) were segmented as images on the
    next run over data/ (an overlay gave 65 "nuclei"); an empty folder among several inputs
    was passed over without a word."""
    import io

    from nuclei_app.batch import segment_paths

    write_image(tmp_path / "data" / "well.png")
    segment_paths(tiny_model, [tmp_path / "data"], tmp_path / "data" / "results", tiny_model.postprocess_settings,
                  log=io.StringIO())
    assert (tmp_path / "data" / "results" / "well_overlay.png").is_file()
    (tmp_path / "empty").mkdir()
    (tmp_path / "data" / "other").mkdir()
    (tmp_path / "data" / "other" / "summary.csv").write_text("name,count\n")   # someone else's: searched
    write_image(tmp_path / "data" / "other" / "b.png")
    notes = []
    found, problems = collect_images([tmp_path / "data", tmp_path / "empty"], notes=notes)
    assert sorted(p.name for p in found) == ["b.png", "well.png"] and not problems
    assert notes == [f"{tmp_path / 'data' / 'results'}: passed over, an earlier run's results (its summary.csv); "
                     "name its files to segment them", f"{tmp_path / 'empty'}: no image files in this folder"]
    found, _ = collect_images([tmp_path / "data" / "results"])   # named: its files are searched
    assert "well_overlay.png" in [p.name for p in found]
    # A review: the run's own --out inside the data, and a folder already searched inside one
    # given before, had notes that made no sense.
    unsaid = []
    collect_images([tmp_path / "data", tmp_path / "data" / "other"], skip_folders=(tmp_path / "data" / "results",),
                   notes=unsaid)
    assert unsaid == []
    log = io.StringIO()
    result = segment_paths(tiny_model, [tmp_path / "data", tmp_path / "empty"], tmp_path / "out",
                           tiny_model.postprocess_settings, log=log)
    assert "note: " + notes[0] + "." in log.getvalue() and len(result.processed) == 2 and result.exit_status == 0


def test_an_ome_tiff_s_outputs_are_named_after_its_name_without_ome(tmp_path):
    names = output_names([tmp_path / "plate A1.ome.tif", tmp_path / "b.ome.tiff"])
    assert list(names.values()) == ["plate A1", "b"]


def test_output_names_disambiguate_same_file_names(tmp_path):
    first, second = tmp_path / "day1" / "img.png", tmp_path / "day2" / "img.png"
    names = output_names([first, second])
    assert names[first] == "img" and names[second] == "day2_img"


def test_files_of_one_folder_differing_by_extension_are_told_apart_by_it(tmp_path):
    """A trial: img.bmp, img.gif and img.webp of one folder became img, in2_img and t_in2_img
    (folder names that tell nothing); x?.jpg and x_.jpg (one safe name) x_ and names_x_."""
    files = [tmp_path / "in2" / f"img.{ext}" for ext in ("bmp", "gif", "webp")]
    assert list(output_names(files).values()) == ["img", "img_gif", "img_webp"]
    same = [tmp_path / "names" / "x?.jpg", tmp_path / "names" / "x_.jpg"]   # one extension: it tells nothing
    assert list(output_names(same).values()) == ["x_", "x__2"]
    assert list(output_names(same + [tmp_path / "names" / "x_.png"]).values()) == ["x_", "x__2", "x__png"]


def test_output_names_differ_without_case_and_fit_the_file_system(tmp_path):
    """Windows and macOS would write x_labels.png and X_labels.png into one file; a 240-character
    stem plus "_measurements.csv" is past the 255 bytes a file name may have."""
    lower, upper = tmp_path / "a" / "x.png", tmp_path / "c" / "X.PNG"
    long = tmp_path / "a" / ("n" * 240 + ".png")
    names = output_names([lower, upper, long])
    assert names[lower] == "x" and names[upper] == "c_X" and names[long] == "n" * 100
    # The extension, then _2, _3 ... still within 100 characters; UTF-8 bytes count too.
    same = [tmp_path / ("n" * 240 + ".png"), tmp_path / ("n" * 240 + ".tif"), tmp_path / ("n" * 241 + ".tif")]
    assert list(output_names(same).values()) == ["n" * 100, "n" * 98 + "_2", "n" * 98 + "_3"]
    assert list(output_names(same[:2]).values()) == ["n" * 100, "n" * 96 + "_tif"]
    cut = tmp_path / "plate_with_a_long_name" / ("m" * 90 + ".png")
    assert output_names([tmp_path / ("m" * 90 + ".png"), cut])[cut] == "long_name_" + "m" * 90  # its own name kept
    wide = tmp_path / ("核" * 90 + ".png")  # 3 bytes a character
    assert len((output_names([wide])[wide] + "_measurements.csv.partial.").encode()) <= 255


def test_a_resumed_run_s_names_are_never_taken_by_another_file(tmp_path):
    """The earlier run named a/x.png 'x'; resumed on b/x.png alone, b must not take 'x' (its
    outputs, already there, would pass for b's)."""
    first, second = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    assert output_names([second], {str(first.resolve()): "x"})[second] == "b_x"
    assert output_names([first, second], {str(first.resolve()): "x"}) == {first: "x", second: "b_x"}


def test_symlink_loops_end_and_each_image_is_found_once(tmp_path):
    write_image(tmp_path / "in" / "a.png")
    write_image(tmp_path / "in" / "sub" / "b.PNG")
    (tmp_path / "in" / "sub" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "in" / "self").symlink_to(".", target_is_directory=True)
    (tmp_path / "other").symlink_to(tmp_path / "in" / "sub", target_is_directory=True)
    found, problems = collect_images([tmp_path / "in", tmp_path / "other"])
    assert sorted(p.name for p in found) == ["a.png", "b.PNG"] and problems == []


def test_broken_links_are_reported_and_hidden_files_passed_over(tmp_path):
    write_image(tmp_path / "in" / "cells.png")
    (tmp_path / "in" / "._cells.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata")
    write_image(tmp_path / "in" / ".thumbnails" / "cells.png")
    (tmp_path / "in" / "gone.tif").symlink_to(tmp_path / "nowhere.tif")
    (tmp_path / "in" / "notes.txt").symlink_to(tmp_path / "nowhere.txt")  # not an image: not our business
    found, problems = collect_images([tmp_path / "in", tmp_path / "in" / "gone.tif"])
    assert found == [tmp_path / "in" / "cells.png"]
    assert [path for path, _ in problems] == [str(tmp_path / "in" / "gone.tif")] * 2
    assert all("broken symbolic link" in reason and "nowhere.tif" in reason for _, reason in problems)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux file names may be any bytes")
def test_file_names_that_are_not_utf8_are_refused_with_a_printable_name(tmp_path):
    folder = tmp_path / "in"
    write_image(folder / "fine.png")
    with open(os.fsencode(folder) + b"/caf\xe9.png", "wb") as file:
        file.write((folder / "fine.png").read_bytes())
    found, problems = collect_images([folder])
    assert found == [folder / "fine.png"]
    assert problems == [(f"{folder}/caf\\xe9.png", problems[0][1])] and "not valid UTF-8" in problems[0][1]
