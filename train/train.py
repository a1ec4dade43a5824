"""``train(config)``: data -> U-Net -> fit -> evaluate + tune -> model folder.

Importable and testable: nothing runs at import time, and everything a run produces lives
in ``config.out`` (run.json, log.csv, checkpoints/, panels/, figures/, model/).
"""
from __future__ import annotations

import json
import logging
import platform
import shlex
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np

from nuclei_app import __version__, precision
from nuclei_app.config import Normalisation
from nuclei_app.machine import describe_machine
from nuclei_app.model import METADATA_FILE

from .callbacks import LastState, PredictionPanels, epochs_done, model_depth, read_state
from .config import BEFORE_IT_EXISTED, TrainConfig, nested_runs
from .augment import Augmentation
from .fine_tune import BaseModel, FineTuneError, base_settings, load_base, recorded_base, start_from, starting_base
from .data_record import check_same_data, data_record
from .data import (CropSequence, DatasetError, Targets, find_samples, holdout_source, load_samples, split_by_image,
                   split_train_validation, validation_crops)
from .losses import bce_dice_loss, body_dice
from .unet import UNetConfig, build_unet

log = logging.getLogger("train")


def make_reproducible(seed: int) -> None:
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend's generators
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # costs nothing measurable on CPU here


def code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"nuclei {__version__}" + (f" ({commit})" if commit else "")


class ConfigMismatch(RuntimeError):
    """``--resume`` was asked with settings other than the run's own."""


class RunInTheWay(RuntimeError):
    """A new run asked for in a folder holding one (a user test: without --resume, a
    55-minute run's checkpoint and log were overwritten without a word), or a resume asked
    to stop before the epochs its run has done."""


def check_run_folder(config: TrainConfig, checkpoints: Path) -> None:
    done = epochs_done(checkpoints)
    if not config.resume and done:
        raise RunInTheWay(f"{config.out} holds a run with {done} epochs done: add --resume to continue it, or "
                          "choose another --out for a new run (or delete the folder).")
    if not config.resume and (Path(config.out) / METADATA_FILE).exists():
        # A trial: --out at an exported model folder filled it with run.json, checkpoints and a
        # nested model/, and the folder still passed as a model (an upload would carry them).
        raise RunInTheWay(f"{config.out} is a model folder (it holds {METADATA_FILE}): choose another --out for the "
                          "run; its model is exported to a model/ folder inside it.")
    exported = Path(config.out) / "model"
    if not config.resume and exported.exists():
        # A user test: --out assets replaced the bundled model (no checkpoints there to refuse on).
        # A run stopped before its first epoch holds nothing to lose: a new one may replace it.
        raise RunInTheWay(f"{config.out} holds a model folder ({exported}) that a new run would overwrite: choose "
                          "another --out for the new run.")
    runs_inside = [] if config.resume else nested_runs(Path(config.out))
    if runs_inside:
        # A trial: --out runs made the folder of every run a run itself, its checkpoints beside theirs.
        raise RunInTheWay(f"{config.out} holds other runs ({', '.join(runs_inside)}): give this run a folder of its "
                          f"own, such as --out {Path(config.out) / 'NAME'}.")
    if config.resume and config.epochs < done:
        raise RunInTheWay(f"the run in {config.out} has {done} epochs done: --epochs {config.epochs} would stop "
                          f"before them; give --epochs {done} or more (or leave it out).")


def run_record(config: TrainConfig, folder: Path) -> dict:
    """run.json's content: a fresh run's settings; on ``--resume`` the original record,
    once the settings are checked to match it (another seed would change the split
    mid-run), with the resume added to its history."""
    path = folder / "run.json"
    if config.resume and path.exists():
        run = json.loads(path.read_text())
        check_data_folder(config, run, path)
        # A moved data folder resumes where the run recorded its data's content (checked once read).
        differences = config_differences(run["config"], config.to_json(), data_checked="data" in run)
        if differences:
            raise ConfigMismatch(
                f"{folder} was started with other settings ({'; '.join(differences)}). Leave those flags "
                f"out to resume with the run's own settings (recorded in {path}), or start a new run with "
                f"another --out.")
        run.setdefault("resumed", []).append({"command": current_command(), "code_version": code_version()})
        # The target this resume trains to is the run's from now on: a plain --resume after an
        # interruption goes on to it (it was refused as "stopping before" the epochs done).
        run["config"]["epochs"] = config.epochs
        run["config"]["data"] = config.to_json()["data"]   # where it is now (a moved folder)
    else:
        run = {
            "command": current_command(),
            "config": config.to_json(),
            "code_version": code_version(),
            "tensorflow": backend_version(),
            "keras": keras.__version__,
            "python": platform.python_version(),
            "machine": describe_machine(),
        }
    return run


def check_data_folder(config: TrainConfig, run: dict, path: Path) -> None:
    """A resume whose recorded data folder is gone is told to give its new place (a trial: it was
    sent to `python -m train.download`, and then refused for the --data it gave)."""
    recorded = run["config"].get("data")
    if Path(config.data).exists() or config.to_json()["data"] != recorded:
        return   # there; or another --data was given, whose absence find_samples words
    where = ("if it moved, give its new place with --data (its images are checked against the run's record)"
             if "data" in run else "this run, started before runs recorded their data's content, resumes only there")
    raise DatasetError(f"{config.data}, the data folder this run started on (recorded in {path}), is not there: "
                       f"{where}.")


def backend_version() -> str:
    """TensorFlow's version; another Keras backend is named with its version."""
    backend = keras.backend.backend()
    module = __import__({"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}.get(backend, backend))
    version = getattr(module, "__version__", "?")
    return version if backend == "tensorflow" else f"none ({backend} {version})"


def current_command() -> str:
    return " ".join(["python -m train"] + [shlex.quote(a) for a in sys.argv[1:]])


def config_differences(original: dict, now: dict, data_checked: bool = False) -> list[str]:
    # A moved run folder is the same run, and more epochs continue it (the resume is recorded
    # with its command); so does a moved data folder where the run recorded its data's content
    # (``data_checked``: compared once read, ``checked_data``); anything else would change the
    # data or the model mid-run.
    ignored = {"resume", "out", "epochs", "loader_workers"} | ({"data"} if data_checked else set())
    # A setting added since the run started was at its default then (what the code did).
    defaults = {**TrainConfig().to_json(), **BEFORE_IT_EXISTED}
    then = {key: original.get(key, defaults.get(key)) for key in set(original) | set(now)}
    return [f"{key}: {then[key]!r} then, {now.get(key)!r} now"
            for key in sorted(set(then) - ignored) if then[key] != now.get(key)]


def prepare_data(config: TrainConfig, normalisation: Normalisation):
    files = find_samples(config.data)
    if config.max_images:
        files = files[: config.max_images]
    started = time.time()
    samples = load_samples(files, normalisation, config.diameter)
    train_set, validation_set = split_train_validation(samples, config.validation_fraction, config.seed)
    if not validation_set and len(samples) >= MIN_IMAGES_TO_HOLD_OUT:
        # One source (a lab's few images of one experiment form one group): held out by image, as
        # the only way to score what the run did not train on (a trial's 6 images had no split).
        train_set, validation_set = split_by_image(samples, config.validation_fraction, config.seed)
        log.info("one source group in %d images: %d held out by image for validation", len(samples),
                 len(validation_set))
    if not validation_set:  # tiny runs: validate on a training image rather than on nothing
        log.info("no validation split in %d images: validating on the training image %s", len(samples),
                 train_set[0].sample_id)
        validation_set = train_set[:1]
    holdout_set = []
    if config.holdout_group is not None:
        group = holdout_source(train_set) if config.holdout_group < 0 else config.holdout_group
        holdout_set = [s for s in train_set if s.group == group]
        train_set = [s for s in train_set if s.group != group]
        log.info("holding out source group %d: %d images, median diameter %.1f px", group, len(holdout_set),
                 float(np.median([s.diameter for s in holdout_set])) if holdout_set else float("nan"))
    log.info("loaded %d images in %.0f s: train %s, validation %s", len(samples), time.time() - started,
             dict(Counter(s.kind for s in train_set)), dict(Counter(s.kind for s in validation_set)))
    return train_set, validation_set, holdout_set


# Fewer images than this, where they form one source group, are all trained on (the run validates
# on one of them, and says so): four is --preset tiny's smoke run.
MIN_IMAGES_TO_HOLD_OUT = 5


def panel_samples(validation_set, count: int):
    """Fixed panel images: the first of each kind, so rare kinds are always on show."""
    chosen, seen = [], set()
    for sample in sorted(validation_set, key=lambda s: s.sample_id):
        if sample.kind not in seen:
            chosen.append(sample)
            seen.add(sample.kind)
    return chosen[:count] or validation_set[:count]


def unet_config(config: TrainConfig) -> UNetConfig:
    return UNetConfig(base_filters=config.base_filters, depth=config.depth, out_channels=len(config.outputs))


def compile_model(model: keras.Model, config: TrainConfig) -> None:
    # Cosine decay over the whole run: large steps early, fine ones when it counts.
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.epochs * config.steps_per_epoch, alpha=0.05)
    averaging = dict(use_ema=True, ema_momentum=config.weight_average) if config.weight_average else {}
    model.compile(optimizer=keras.optimizers.Adam(schedule, **averaging), loss=bce_dice_loss, metrics=[body_dice])


def build_or_resume(config: TrainConfig, checkpoints: Path, base: BaseModel | None = None) -> tuple[keras.Model, int]:
    """The checkpoint's model on --resume; else a new U-Net, with ``base``'s weights where fine-tuning."""
    if config.resume and (checkpoints / "last.keras").exists():
        model = keras.saving.load_model(checkpoints / "last.keras")
        start = epochs_done(checkpoints)
        if start >= config.epochs:   # a trial: "resuming after epoch 2", then minutes of evaluation
            log.info("the run in %s is complete (%d epochs): evaluating and exporting it again", config.out, start)
        else:
            log.info("resuming after epoch %d from %s", start, checkpoints / "last.keras")
        return model, start
    model = build_unet(unet_config(config))
    if base is not None:
        start_from(model, base)
    if precision.resolve(config.precision) == "bfloat16":
        # The float32 network's initial weights in a mixed_bfloat16 copy: the seed draws the
        # same start in either arithmetic. A checkpoint keeps the layers' policy on --resume.
        model = precision.bfloat16_copy(model)
    compile_model(model, config)
    return model, 0


def fit(model, config: TrainConfig, train_set, validation_set, start_epoch: int, folder: Path):
    checkpoints = folder / "checkpoints"
    targets = Targets(centre="centre" in config.outputs, gap_weight=config.gap_weight)
    sequence = CropSequence(train_set, config.batch_size, config.crop_size, config.steps_per_epoch,
                            config.seed, Augmentation(synthetic_stain_probability=config.synthetic_stain,
                                                      synthetic_tissue_probability=config.synthetic_tissue),
                            first_epoch=start_epoch,
                            workers=config.loader_workers, kind_balance=config.kind_balance,
                            targets=targets)
    validation = validation_crops(validation_set, config.crop_size, targets)
    keep_logged_epochs(folder / "log.csv", start_epoch)
    callbacks = [
        keras.callbacks.CSVLogger(str(folder / "log.csv"), append=start_epoch > 0),
        LastState(checkpoints),
        PredictionPanels(panel_samples(validation_set, config.panel_images), folder / "panels", config.panel_every),
    ]
    model.fit(sequence, validation_data=validation, epochs=config.epochs, initial_epoch=start_epoch,
              callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)


def keep_logged_epochs(log_file: Path, epochs: int) -> None:
    """Drops log.csv's rows of epochs not in the checkpoint: an interruption while an epoch
    was being saved left its row, and the resume that trains it again logged it twice."""
    if not log_file.exists():
        return
    lines = log_file.read_bytes().splitlines(keepends=True)   # bytes: CSVLogger's \r\n endings kept

    def later_epoch(line: bytes) -> bool:   # anything but an epoch's row (a blank line) stays
        first = line.split(b",", 1)[0].strip()
        return first.isdigit() and int(first) >= epochs

    kept = lines[:1] + [line for line in lines[1:] if not later_epoch(line)]
    if len(kept) < len(lines):
        log_file.write_bytes(b"".join(kept))


@dataclass
class FittedRun:
    """What the fitting stage hands to evaluation and export."""

    folder: Path
    run: dict
    normalisation: Normalisation
    model: keras.Model
    validation_set: list
    holdout_set: list
    images: dict     # image_counts


def fit_run(config: TrainConfig, init_seed: int | None = None) -> FittedRun:
    """Fits (or resumes) a run up to ``config.epochs``. ``init_seed`` seeds the initial
    weights alone (split and crops stay those of ``config.seed``): two runs that differ only
    in it measure the run-to-run noise a recipe change has to beat."""
    folder = Path(config.out)
    checkpoints = folder / "checkpoints"
    run = run_record(config, folder)   # first: another --seed is told as such, not as an epochs problem
    check_run_folder(config, checkpoints)
    base = starting_base(config, run, resumes_checkpoint=config.resume and (checkpoints / "last.keras").exists())
    make_reproducible(config.seed if init_seed is None else init_seed)
    normalisation = Normalisation()
    train_set, validation_set, holdout_set = prepare_data(config, normalisation)
    run["data"] = checked_data(run, folder, train_set, validation_set, holdout_set)
    # Written once the data is read: a start that fails on it (a wrong --data) leaves no run
    # folder, and no record that a later --resume would take for a run.
    checkpoints.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(run, indent=2))
    model, start_epoch = build_or_resume(config, checkpoints, base)
    if start_epoch < config.epochs:
        fit(model, config, train_set, validation_set, start_epoch, folder)
    # fit() ends by putting the averaged weights in place; a resumed run that was already
    # complete loads the checkpoint's last-step weights, so do it here too (idempotent).
    model.optimizer.finalize_variable_values(model.trainable_variables)
    return FittedRun(folder, run, normalisation, model, validation_set, holdout_set, image_counts(train_set, validation_set))


def checked_data(run: dict, folder: Path, train_set: list, validation_set: list, holdout_set: list) -> dict:
    """The run's data record, refused (DataChanged) where a resume found other data than it started on."""
    now = data_record(train_set, validation_set, holdout_set)
    if run.get("resumed") and "data" not in run:   # started before runs recorded their data (its path is checked)
        log.info("%s records no data content to compare with (an older run): recording this resume's",
                 folder / "run.json")
    check_same_data(run.get("data"), now, folder)
    return now


def fine_tuning_record(fitted: FittedRun, keras_model: keras.Model, config: TrainConfig, multiple: int) -> dict:
    """Where the weights started, and what fine-tuning bought on the run's validation images
    (``evaluate.compare_with_start``; not where the base can't be had as it was, which it says)."""
    from .evaluate import compare_with_start

    record = dict(fitted.run["fine_tuned_from"])
    try:
        start = load_base(recorded_base(record))
    except FineTuneError as error:   # the run's model is exported all the same, saying why
        log.warning("the model this run started from is not scored for comparison: %s", error)
        return {**record, "not_scored": str(error).removeprefix("--fine-tune ")}
    record["validation"] = compare_with_start(start, keras_model, fitted.validation_set, config, multiple)
    return record


def image_counts(train_set: list, validation_set: list) -> dict:
    """nuclei.json's training ``images``: how many, and whether the validation image is a training
    one (a run on too few images for a split validates on one: its card says so)."""
    trained = {s.sample_id for s in train_set}
    reused = any(s.sample_id in trained for s in validation_set)
    return {"train": len(train_set), "validation": len(validation_set), "validation_is_training": reused,
            # Held out by image (one source group): the split by group leaves no group on both sides.
            "validation_by_image": not reused and bool({s.group for s in train_set} & {s.group for s in validation_set})}


def without_optimizer(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The same weights in an uncompiled copy: what is exported (the optimizer state would
    triple the file and means nothing at inference)."""
    clean = build_unet(unet_config(config))
    clean.set_weights(model.get_weights())
    return clean


def evaluate_and_export(config: TrainConfig, fitted: FittedRun) -> Path:
    """Scores the fitted weights (tuning, shift validation, figures) and writes the model folder."""
    # The final weights are shipped: the cosine schedule ends at a small learning rate, and
    # choosing "the best" epoch on the validation split would flatter the metrics it reports.
    # Imported here: evaluation and export are only needed once training is over.
    from .evaluate import evaluate_holdout, evaluate_model, save_figures
    from .export import export_model_folder

    clean = without_optimizer(fitted.model, config)
    multiple = 2 ** model_depth(clean)
    # Settings tuned on an image the network trained on would be fitted to it: the starting ones stay.
    tuning = replace(config, tune=config.tune and not fitted.images["validation_is_training"])
    report = evaluate_model(clean, fitted.validation_set, tuning, multiple=multiple, start=base_settings(fitted.run))
    if fitted.holdout_set:
        report["holdout"] = evaluate_holdout(clean, fitted.holdout_set, config, report, multiple=multiple)
    report["training"] = {**training_summary(config, fitted.folder / "checkpoints"), "images": fitted.images,
                          # From the fitted layers, not the config: "auto" may have resolved
                          # otherwise on the machine that started the run.
                          "precision": precision.computed_in(fitted.model)}
    if fitted.run.get("fine_tuned_from"):
        report["training"]["fine_tuned_from"] = fine_tuning_record(fitted, clean, config, multiple)
    save_figures(clean, fitted.folder, fitted.validation_set, report)
    return export_model_folder(clean, fitted.folder / "model", report, fitted.run, fitted.normalisation, config)


def train(config: TrainConfig) -> Path:
    """Runs (or resumes) training and returns the exported model folder."""
    return evaluate_and_export(config, fit_run(config))


def training_summary(config: TrainConfig, checkpoints: Path) -> dict:
    seconds = read_state(checkpoints)["train_seconds"]
    return {
        "epochs": config.epochs,
        "steps_per_epoch": config.steps_per_epoch,
        "batch_size": config.batch_size,
        "crop_size": config.crop_size,
        "fit_minutes": round(seconds / 60, 1),
        "epochs_per_second": round(config.epochs / seconds, 5) if seconds else None,
        "crops_per_second": round(config.epochs * config.steps_per_epoch * config.batch_size / seconds, 2) if seconds else None,
    }
