"""What a model folder's validation scores rest on, read from its ``nuclei.json``: which data, held
out how, and whether they say anything about new images at all (a run on too few images for a
split validated on an image it trained on). The card, ``info``, the CLI's notes and the app's page
describe a model's scores from here, so none claims more than the record does."""
from __future__ import annotations

from pathlib import Path

from .config import PROJECT_DIR


def training_record(metadata: dict) -> dict:
    training = metadata.get("training")
    return training if isinstance(training, dict) else {}   # a Hub folder's nuclei.json may hold anything


def training_data_path(training: dict) -> str:
    return str(training.get("data") or training.get("config", {}).get("data", ""))  # older folders: the run config


def data_folder_name(training: dict) -> str | None:
    """The data folder by its name (recorded relative to the project: "../.." has a name too); None
    where none is recorded. The path on the machine that trained means nothing elsewhere."""
    path = training_data_path(training)
    return (PROJECT_DIR / path).resolve().name if path else None


def trained_on_dsb2018(training: dict) -> bool:
    """Whether the record names DSB2018's stage 1 training set (its folder, as ``train.download``
    and ``../shared`` hold it), not a folder of the user's own: the card claims only what it is."""
    return Path(training_data_path(training)).name == "stage1_train"


def scored_on_training_image(training: dict) -> bool:
    """From nuclei.json's ``training`` record: validated on an image it trained on."""
    images = training.get("images")
    return isinstance(images, dict) and bool(images.get("validation_is_training"))


def held_out_by_image(training: dict) -> bool:
    """Validation images held out by image from one source (not by source group): they may look
    much like training ones, which flatters the scores."""
    images = training.get("images")
    return isinstance(images, dict) and bool(images.get("validation_by_image"))


def scores_caveat(training: dict) -> str | None:
    """What ``info`` and ``segment`` say beside a model whose validation scores flatter it, if they do."""
    if scored_on_training_image(training):
        return "scored on an image it trained on (too few images for a validation split): check its results by eye"
    if held_out_by_image(training):   # a trial: a lab's model held out by image read as validated on other sources
        return ("held out by image from one source: validation images may look much like training ones, which "
                "flatters the scores")
    return None


def scores_for_new_images(metadata: dict) -> dict:
    """The folder's metrics where they are of images the network never trained on, else none: a
    training image's score is no confidence to show beside a user's image (a trial's notes quoted one)."""
    metrics = metadata.get("metrics")
    return {} if scored_on_training_image(training_record(metadata)) or not isinstance(metrics, dict) else metrics


def validation_label(metadata: dict) -> str:
    """A short heading for the scores: "Validation (DSB2018, 20 % held out by source group)"."""
    training = training_record(metadata)
    if scored_on_training_image(training):
        return "Scored on an image it trained on (too few images for a validation split)"
    source = "DSB2018" if trained_on_dsb2018(training) else f"`{data_folder_name(training) or '?'}`"
    held_out_by = "image" if held_out_by_image(training) else "source group"
    fraction = training.get("validation_fraction", 0.2)
    fraction = f"{fraction:.0%}" if isinstance(fraction, (int, float)) else "part"
    return f"Validation ({source}, {fraction} held out by {held_out_by})"
