"""What a run trained and validated on, recorded in run.json so that ``--resume`` can refuse a
data folder that changed mid-run (images added or removed, a mask redrawn) or a split that came
out otherwise: the run would go on training on other images than it started on, and its card
would describe neither."""
from __future__ import annotations

import hashlib
from pathlib import Path

from .data import Sample


class DataChanged(RuntimeError):
    """``--resume`` found other images, other content or another split than the run started on."""


def data_record(train_set: list[Sample], validation_set: list[Sample], holdout_set: list[Sample]) -> dict:
    """The run's images by id, its split, and one digest of every file read (images and masks)."""
    samples = {s.sample_id: s for s in train_set + validation_set + holdout_set}
    return {"images": len(samples),
            "ids": sorted(samples),   # ~40 KB for DSB2018's 664: what was added or removed can be named
            "validation_ids": sorted(s.sample_id for s in validation_set),
            "holdout_ids": sorted(s.sample_id for s in holdout_set),
            "digest": files_digest([samples[i] for i in sorted(samples)])}


def files_digest(samples: list[Sample]) -> str:
    """sha256 over each sample's id and its files' names and bytes (the DSB2018 set's 30k files: ~3 s)."""
    total = hashlib.sha256()
    for sample in samples:
        total.update(sample.sample_id.encode() + b"\0")
        for path in sample_paths(sample):
            with open(path, "rb") as handle:
                total.update(path.name.encode() + b"\0" + hashlib.file_digest(handle, "sha256").digest())
    return total.hexdigest()


def sample_paths(sample: Sample) -> list[Path]:
    files = sample.files
    if files is None:   # built in memory (tests): its id is all there is to compare
        return []
    masks = [files.merged_mask_path] if files.merged_mask_path else sorted(files.mask_paths)
    return [files.image_path, *masks]


COMPARED = ("images", "ids", "validation_ids", "holdout_ids", "digest")   # a key added later compares nothing


def check_same_data(recorded: dict | None, now: dict, folder: Path) -> None:
    """Raises DataChanged, saying what changed, where a run's recorded data differs from ``now``.
    A run recorded before this check existed has nothing to compare (its resume records it)."""
    if not recorded or all(key not in recorded or recorded[key] == now[key] for key in COMPARED):
        return
    raise DataChanged(f"{folder} was started on other data: {'; '.join(differences(recorded, now))}. Resume it "
                      f"only with the images it started on (or, to train on these, start a new run with another "
                      f"--out).")


def differences(recorded: dict, now: dict) -> list[str]:
    said = []
    then_ids, now_ids = set(recorded.get("ids", now["ids"])), set(now["ids"])
    if then_ids != now_ids:
        counts = ("other images" if recorded["images"] == now["images"] else
                  f"{recorded['images']} images then, {now['images']} now")
        said.append(f"{counts} (removed: {listed(then_ids - now_ids)}; added: {listed(now_ids - then_ids)})")
    elif recorded["images"] != now["images"]:   # recorded without its ids
        said.append(f"{recorded['images']} images then, {now['images']} now")
    for key, name in (("validation_ids", "validation"), ("holdout_ids", "held-out source")):
        then, current = set(recorded.get(key, [])), set(now.get(key, []))
        if then != current:
            said.append(f"{name} images then but not now: {listed(then - current)}; now but not then: "
                        f"{listed(current - then)}")
    if not said:   # the digest alone differs
        said.append("the same number of images and the same split, but an image or mask file was changed, "
                    "renamed, added or removed")
    return said


def listed(ids: set[str], shown: int = 3) -> str:
    names = ", ".join(sorted(ids)[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
    return names or "none"
