"""The images a run is given: files and folders searched for images (what can't be used is
said, with the reason), and each image's NAME for its output files, unique in the folder."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .config import IMAGE_SUFFIXES
from .results import fitting_name, output_stem


# The first columns of summary.csv (records.SUMMARY_COLUMNS): a folder holding one with them
# is an output folder of this tool.
RESULTS_HEADER = b"image,file,width,height,nuclei,"


def collect_images(paths: list[str | Path], skip_folders: tuple[Path, ...] = (), notes: list[str] | None = None
                   ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files from files and folders (recursive, image suffixes in any case), and the
    (path, reason) of what can't be used: missing paths, broken links, unreadable folders,
    file names that are not valid UTF-8 (summary.csv could not hold them). ``notes`` gets
    what the user should know about the folders: one of several given that holds no image,
    and results folders of earlier runs passed over (``is_results_folder``).

    Folders are walked with ``os.walk``, following links to folders but entering each real
    folder once, so a link to a parent folder (a loop) or a second way to the same data
    neither hangs the scan nor segments an image twice. Hidden files and folders (".", such
    as macOS's "._name.png" metadata files) are not images and are passed over."""
    found, problems = [], []
    # The output folder is never searched: a run whose --out is inside an input folder would
    # otherwise segment its own outputs on the next run.
    entered = {os.path.realpath(folder) for folder in skip_folders}
    notes = notes if notes is not None else []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            searched = os.path.realpath(path) in entered  # the output folder, or inside a folder given before
            images, trouble = _scan_folder(path, entered, notes)
            found += images
            problems += trouble
            if not (images or trouble or searched) and len(paths) > 1:  # alone, the run says it found nothing
                notes.append(f"{path}: no image files in this folder")
        elif path.is_file():
            found.append(path)
        elif path.is_symlink():
            problems.append((str(path), _broken_link_reason(path)))
        else:
            problems.append((str(path), "no such file or folder"))
    problems += [(str(p), "the file name is not valid UTF-8 text (it was probably written on a system with "
                          "another encoding); rename the file.") for p in found if not _is_utf8(p)]
    found = _first_of_each_file([p for p in found if _is_utf8(p)])
    return found, [(_printable(path), reason) for path, reason in problems]


def _scan_folder(folder: Path, entered: set[str], notes: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``folder``, skipping real folders already in ``entered`` (updated)
    and results folders of this tool below it (said in ``notes``)."""
    found, problems = [], []

    def unreadable(error: OSError) -> None:
        problems.append((error.filename or str(folder), f"the folder could not be read ({error.strerror or error})."))

    for root, folders, files in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(root)
        if real in entered:  # a symlink loop, or another link to a folder already searched
            folders[:] = []
            continue
        entered.add(real)
        folders[:] = [name for name in folders if not name.startswith(".")]
        # Not the output folder (``entered``: it is passed over without a word, as it always was).
        results = [name for name in folders if os.path.realpath(Path(root, name)) not in entered
                   and is_results_folder(Path(root, name))]
        if results:
            folders[:] = [name for name in folders if name not in results]
            notes += [f"{Path(root, name)}: passed over, an earlier run's results (its summary.csv); name its "
                      "files to segment them" for name in results]
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(root, name)
            if path.is_file():
                found.append(path)
            else:  # a link to a file that moved, or to itself
                problems.append((str(path), _broken_link_reason(path)))
    return sorted(found), problems


def is_results_folder(folder: Path) -> bool:
    """A folder this tool wrote results into (its summary.csv's header): its label, mask and
    overlay PNGs are outputs, not micrographs (a trial: results kept beside the data were
    segmented as images on the next run over the data, 65 "nuclei" found in an overlay)."""
    try:
        with open(folder / "summary.csv", "rb") as summary:
            return summary.read(len(RESULTS_HEADER)) == RESULTS_HEADER
    except OSError:
        return False


def _first_of_each_file(paths: list[Path]) -> list[Path]:
    """Without repeats: a file named twice (directly, or by a link) is segmented once."""
    seen, unique = set(), []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def _broken_link_reason(path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return f"broken symbolic link to {target}: the file it points to does not exist. Fix or remove the link."


def _is_utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of a POSIX file name, kept as surrogates
        return False
    return True


def _printable(path: str) -> str:
    """The path with undecodable bytes as \\xNN escapes: printable, and storable in summary.csv."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def output_names(images: list[Path], earlier: dict[str, str] | None = None) -> dict[Path, str]:
    """NAME for each input: its stem, made safe and cut to fit a file system (``output_stem``);
    inputs sharing a name, compared without case as Windows and macOS do, get their parent folders
    prefixed (files of one folder that differ by their extension only, that extension), then
    _2, _3 ... ``earlier``: the resolved path -> NAME of every file a resumed run named: those
    files keep their names, and no other file may take one of them (its outputs would pass
    for the other file's)."""
    earlier = earlier or {}
    names, used = {}, {name.casefold() for name in earlier.values()}
    for image in images:
        name = earlier.get(str(image.resolve()))
        if name:
            names[image] = name
    siblings = Counter(_folder_and_stem(image) for image in images)
    same_extension = Counter(_folder_and_stem(image) + (image.suffix.lower(),) for image in images)
    for image in images:
        if image not in names:
            key = _folder_and_stem(image)
            by_extension = siblings[key] > 1 and same_extension[key + (image.suffix.lower(),)] == 1
            names[image] = _free_name(image, used, siblings[key] > 1, by_extension)
            used.add(names[image].casefold())
    return names


def _folder_and_stem(image: Path) -> tuple[str, str]:
    return str(image.resolve().parent), output_stem(image.name).casefold()


def _free_name(image: Path, used: set[str], has_siblings: bool, by_extension: bool) -> str:
    """``has_siblings``: files of the same folder share its NAME (img.gif beside img.bmp), which
    their folders' names don't tell apart: the extension does where theirs differ
    (``by_extension``), else a number (a trial: img, in2_img and t_in2_img, the last from a
    folder two levels up)."""
    name = output_stem(image.name)
    if has_siblings:
        extension = fitting_name(name, f"_{image.suffix.lstrip('.').lower()}")
        for candidate in [name] + ([extension] if by_extension else []):
            if candidate.casefold() not in used:
                return candidate
        return _numbered(name, used)
    for parent in image.resolve().parents:
        if name.casefold() not in used:
            return name
        # Cut from the front where too long: the file's own name is what tells files apart.
        name = fitting_name(f"{parent.name}_{name}", keep_end=True)
    return _numbered(name, used)


def _numbered(name: str, used: set[str]) -> str:
    number = 2
    while fitting_name(name, f"_{number}").casefold() in used:
        number += 1
    return fitting_name(name, f"_{number}")
