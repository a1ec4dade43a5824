"""Fine-tuning: a run that starts from a published model's weights instead of random ones.

A lab whose images the bundled model segments poorly (another stain, microscope or
magnification) annotates a few of them and fine-tunes on those, as Cellpose's and StarDist's
users do. The network keeps the base model's shape (filters, depth, outputs) and nucleus
scale, so the starting weights fit it; the run records where they came from, and its export
scores the base model on the same validation images, so the card says what fine-tuning bought.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from nuclei_app.config import Normalisation
from nuclei_app.model import (ModelLoadError, NucleiModel, load_model_folder, model_digest, normalisation_of,
                              verify_folder)
from nuclei_app.sources import HF_PREFIX, download_from_hub, parse_hub_source

from .config import FINE_TUNE_DEFAULTS, TrainConfig

log = logging.getLogger("train")

# The settings that fix the network's shape and what it was trained to see: the base's own.
ARCHITECTURE = ("base_filters", "depth", "markers", "diameter")

class FineTuneError(ValueError):
    """The model to fine-tune from can't be used; the message says which and why."""


@dataclass(frozen=True)
class BaseModel:
    """The model a fine-tuning run starts from, pinned: a Hub source by its commit."""

    source: str          # as given, e.g. "assets/model" or "hf://owner/name"
    folder: Path
    metadata: dict
    revision: str | None = None   # the Hub commit

    @property
    def pinned(self) -> str:
        return pinned_source(self.source, self.revision)

    def record(self) -> dict:
        """run.json's and nuclei.json's ``fine_tuned_from``."""
        return {"source": self.source, "revision": self.revision, "version": model_digest(self.folder)}


def pinned_source(source: str, revision: str | None) -> str:
    """The source that gives the same files again: a Hub branch may move on, its commit not."""
    return f"{HF_PREFIX}{parse_hub_source(source).repo_id}@{revision}" if revision else source


def find_base(source: str) -> BaseModel:
    """The base's folder and nuclei.json, read without loading Keras (arguments are checked
    before TensorFlow starts)."""
    try:
        if source.startswith(HF_PREFIX):
            folder, revision = download_from_hub(parse_hub_source(source))
        else:
            folder, revision = Path(source).expanduser(), None
        metadata = verify_folder(folder, source)
    except ModelLoadError as error:
        raise FineTuneError(f"--fine-tune {error}") from None
    return BaseModel(source, folder, metadata, revision)


def architecture_of(base: BaseModel) -> dict:
    """Its network's shape and scale, from its nuclei.json; a folder that does not record them
    was not made by ``python -m train`` (or is older than the nucleus scale)."""
    training = base.metadata.get("training", {})
    values = {"base_filters": training.get("base_filters"), "depth": training.get("depth"),
              "markers": "centre" if "centre" in base.metadata.get("outputs", []) else "boundary",
              "diameter": (base.metadata.get("scale") or {}).get("diameter")}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise FineTuneError(f"--fine-tune {base.source}: its nuclei.json does not record its {' or '.join(missing)}, "
                            "so its network can't be rebuilt to train on: fine-tune a model folder made by "
                            "`python -m train`.")
    normalisation = normalisation_of(base.metadata)
    if normalisation != Normalisation():
        raise FineTuneError(f"--fine-tune {base.source}: it normalises its input otherwise ({normalisation}) than "
                            "training does; a run from it would teach it other inputs.")
    return values


def with_base(config: TrainConfig, base: BaseModel, given: dict, preset: dict | None = None) -> TrainConfig:
    """``config`` with the base's architecture, and the fine-tuning defaults where neither a
    flag nor the preset sets them (``--preset tiny`` stays a seconds-long run); a flag that
    would change the base's network is refused rather than ignored."""
    architecture = architecture_of(base)
    conflicts = [f"--{name.replace('_', '-')} {_shown(given[name])}"
                 for name in ARCHITECTURE if name in given and given[name] != architecture[name]]
    if conflicts:
        shape = ", ".join(f"{name.replace('_', ' ')} {_shown(value)}" for name, value in architecture.items())
        raise FineTuneError(f"--fine-tune {base.source}: its network has {shape}; {' and '.join(conflicts)} would "
                            "need another network: leave them out (or train a new model without --fine-tune).")
    defaults = {name: value for name, value in FINE_TUNE_DEFAULTS.items() if name not in {**(preset or {}), **given}}
    return replace(config, **architecture, **defaults)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def load_base(base: BaseModel) -> NucleiModel:
    try:
        return load_model_folder(base.folder, source=base.source, revision=base.revision)
    except ModelLoadError as error:
        raise FineTuneError(f"--fine-tune {error}") from None


def start_from(model, base: BaseModel) -> None:
    """Puts the base's weights into ``model``, built with the base's architecture."""
    try:
        model.set_weights(load_base(base).keras_model.get_weights())
    except ValueError as error:   # another network than its nuclei.json describes
        raise FineTuneError(f"--fine-tune {base.source}: its weights do not fit the U-Net its nuclei.json "
                            f"describes ({error}).") from None
    log.info("starting from the weights of %s (version %s)", base.pinned, model_digest(base.folder))


def base_of_run(run: dict) -> BaseModel | None:
    """The base a run recorded, found again at its pinned source for the export's comparison;
    None for a run from random weights, or where the base's files have changed since (then
    its score would not be the starting point's)."""
    record = run.get("fine_tuned_from")
    if not record:
        return None
    pinned = pinned_source(record["source"], record.get("revision"))
    try:
        base = find_base(pinned)
    except FineTuneError as error:
        log.warning("the model this run started from can't be scored for comparison: %s", error)
        return None
    if model_digest(base.folder) != record["version"]:
        log.warning("%s has changed since this run started from it: not scored for comparison", pinned)
        return None
    return base
