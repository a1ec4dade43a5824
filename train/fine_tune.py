"""Fine-tuning: a run that starts from a published model's weights instead of random ones.

A lab whose images the bundled model segments poorly (another stain, microscope or
magnification) annotates a few of them and fine-tunes on those, as Cellpose's and StarDist's
users do. The network keeps the base model's shape (filters, depth, outputs) and nucleus
scale, so the starting weights fit it; the run records where they came from (a Hub source
pinned to its commit), and its export scores the base model on the same validation images,
so the card says what fine-tuning bought.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from nuclei_app.config import Normalisation, PostprocessSettings
from nuclei_app.model import (ModelLoadError, NucleiModel, load_model_folder, model_digest, normalisation_of,
                              postprocess_of, verify_folder)
from nuclei_app.sources import HF_PREFIX, HubSource, download_from_hub, parse_hub_source

from .config import FINE_TUNE_DEFAULTS, TrainConfig, portable

log = logging.getLogger("train")

# The settings that fix the network's shape and what it was trained to see: the base's own.
ARCHITECTURE = ("base_filters", "depth", "markers", "diameter")


class FineTuneError(RuntimeError):
    """The model to fine-tune from can't be used; the message says which and why."""


@dataclass(frozen=True)
class BaseModel:
    """The model a fine-tuning run starts from."""

    source: str | Path   # a local folder, or a Hub source pinned to its commit
    folder: Path
    metadata: dict

    def record(self) -> dict:
        """run.json's and nuclei.json's ``fine_tuned_from``: a folder relative to the project, as
        ``data`` is, so the record means the same in anyone's clone."""
        hub = parse_hub_source(self.source) if is_hub(self.source) else None
        return {"source": f"{HF_PREFIX}{hub.repo_id}" if hub else portable(Path(self.source)),
                "revision": hub.revision if hub else None, "digest": model_digest(self.folder),
                "postprocess": self.metadata.get("postprocess")}


def is_hub(source: str | Path) -> bool:
    return isinstance(source, str) and source.startswith(HF_PREFIX)


def model_source(text: str) -> str | Path:
    """``--fine-tune``'s value: a Hub source as given, a folder as an absolute path (a run resumed
    from another working directory still finds it). An empty value (an unset variable) is an
    error, not a run from random weights."""
    if not text.strip():
        raise ValueError("empty: give a model folder or hf://OWNER/NAME[@REVISION]")
    return text if text.startswith(HF_PREFIX) else Path(text).expanduser().resolve()


def find_base(source: str | Path) -> BaseModel:
    """The base's folder and nuclei.json, read without loading Keras (arguments are checked
    before TensorFlow starts); a Hub source comes back pinned to the commit it resolved to, so
    its shape, its weights and its record are of the same files."""
    try:
        if is_hub(source):
            hub = parse_hub_source(source)
            folder, commit = download_from_hub(hub)
            source = str(HubSource(hub.repo_id, commit))
        else:
            folder = Path(source)
        metadata = verify_folder(folder, str(source))
    except ModelLoadError as error:
        raise FineTuneError(f"--fine-tune {error}") from None
    return BaseModel(source, folder, metadata)


def recorded_base(record: dict) -> BaseModel:
    """The base a run recorded, found again at its pinned source; refused where its files have
    changed since (it would not be the run's starting point)."""
    from nuclei_app.config import PROJECT_DIR

    if record.get("revision"):
        source = str(HubSource(record["source"].removeprefix(HF_PREFIX), record["revision"]))
    else:
        source = (PROJECT_DIR / record["source"]).resolve()   # recorded relative to the project; absolute stays
    base = find_base(source)
    digest = model_digest(base.folder)
    if digest != record["digest"]:
        raise FineTuneError(f"{base.source} has changed since the run started from it (digest {digest}, "
                            f"then {record['digest']})")
    return base


def architecture_of(base: BaseModel) -> dict:
    """Its network's shape and scale, from its nuclei.json; a folder that does not record them
    was not made by ``python -m train`` (or is older than the nucleus scale)."""
    training = base.metadata.get("training")
    training = training if isinstance(training, dict) else {}
    values = {"base_filters": training.get("base_filters"), "depth": training.get("depth"),
              "markers": "centre" if "centre" in base.metadata.get("outputs", []) else "boundary",
              "diameter": (base.metadata.get("scale") or {}).get("diameter")}
    unusable = [name for name in ("base_filters", "depth")
                if not (isinstance(values[name], int) and not isinstance(values[name], bool) and values[name] > 0)]
    unusable += [] if isinstance(values["diameter"], (int, float)) and values["diameter"] > 0 else ["diameter"]
    if unusable:
        raise FineTuneError(f"--fine-tune {base.source}: its nuclei.json does not record a usable "
                            f"{' or '.join(unusable)}, so its network can't be rebuilt to train on: fine-tune a "
                            "model folder made by `python -m train`.")
    normalisation = normalisation_of(base.metadata)
    if normalisation != Normalisation():
        raise FineTuneError(f"--fine-tune {base.source}: it normalises its input otherwise ({normalisation}) than "
                            "training does; a run from it would teach it other inputs.")
    return {**values, "diameter": float(values["diameter"])}


def with_base(config: TrainConfig, base: BaseModel, given: dict, preset: dict | None = None) -> TrainConfig:
    """``config`` with the base (pinned), its architecture, and the fine-tuning defaults where
    neither a flag nor the preset sets them (``--preset tiny`` stays a seconds-long run); a flag
    that would change the base's network is refused rather than ignored."""
    architecture = architecture_of(base)
    conflicts = [f"--{name.replace('_', '-')} {_shown(given[name])}"
                 for name in ARCHITECTURE if name in given and given[name] != architecture[name]]
    if conflicts:
        shape = ", ".join(f"{name.replace('_', ' ')} {_shown(value)}" for name, value in architecture.items())
        raise FineTuneError(f"--fine-tune {base.source}: its network has {shape}; {' and '.join(conflicts)} would "
                            "need another network: leave them out (or train a new model without --fine-tune).")
    defaults = {name: value for name, value in FINE_TUNE_DEFAULTS.items() if name not in {**(preset or {}), **given}}
    return replace(config, **architecture, **defaults, fine_tune=base.source)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def load_base(base: BaseModel) -> NucleiModel:
    try:
        return load_model_folder(base.folder, source=str(base.source))
    except ModelLoadError as error:
        raise FineTuneError(f"--fine-tune {error}") from None


def start_from(model, base: BaseModel) -> None:
    """Puts the base's weights into ``model``, built with the base's architecture."""
    weights = load_base(base).keras_model.get_weights()
    try:
        model.set_weights(weights)
    except ValueError as error:   # another network than its nuclei.json describes
        raise FineTuneError(f"--fine-tune {base.source}: its weights do not fit the U-Net its nuclei.json "
                            f"describes ({error}).") from None
    log.info("starting from the weights of %s (digest %s)", base.source, model_digest(base.folder))


def starting_base(config: TrainConfig, run: dict, resumes_checkpoint: bool) -> BaseModel | None:
    """The model a fine-tuning run starts from: found and recorded in run.json on its first start;
    on a resume before the first checkpoint, found again as recorded; not needed (and not looked
    for: it may have moved) where the run resumes from its checkpoint."""
    if not config.fine_tune or resumes_checkpoint:
        return None
    record = run.get("fine_tuned_from")
    if record:
        try:
            return recorded_base(record)
        except FineTuneError as error:
            raise FineTuneError(f"{error}: start a new run (another --out) to fine-tune it as it is now") from None
    base = find_base(config.fine_tune)
    run["fine_tuned_from"] = base.record()
    return base


def base_settings(run: dict) -> PostprocessSettings | None:
    """The post-processing settings a fine-tuning run's base shipped (recorded at its start), the
    export's starting point for tuning its own; None for a run from random weights."""
    recorded = (run.get("fine_tuned_from") or {}).get("postprocess")
    return postprocess_of({"postprocess": recorded}) if isinstance(recorded, dict) else None
