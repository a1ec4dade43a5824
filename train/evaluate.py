"""Validation: the whole app/CLI pipeline on original images, shift validation, cross-tuning.

Every score here goes through ``nuclei_app.pipeline`` exactly as a user's image does: the
original file, its nuclear channel, the shared ``preprocess``, the automatic diameter, the
rescaling, the tiled network and the watershed.

Honest numbers:
- the validation split is by source group (``data.split_train_validation``);
- post-processing thresholds are *cross-tuned* at export: validation groups fall in two
  folds, each image is scored with the settings tuned on the other fold, and the shipped
  settings are tuned on both; rescoring a finished folder uses its shipped settings, and
  every report says which (``postprocess_scoring``): compare models scored the same way;
- shift validation scores the same images rescaled x0.5, x2 and x3 (masks nearest-neighbour)
  and, for brightfield and tissue, re-stained four ways (``LIGHT_SHIFTS``): the kinds of
  change a user's microscope brings that the validation split does not.
"""
from __future__ import annotations

import csv
import itertools
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from skimage.color import hed2rgb, rgb2hed

from nuclei_app.config import InferenceSettings, Normalisation, PostprocessSettings
from nuclei_app.imageio import read_image
from nuclei_app.metrics import ImageScores, image_scores, mean_scores
from nuclei_app.model import NucleiModel
from nuclei_app.pipeline import Prediction, labels_for, predict
from nuclei_app.precision import PRECISIONS
from nuclei_app.scale import median_diameter, rescale_image, resize_labels
from nuclei_app.validation_record import scored_on_training_image
from nuclei_app.wording import plural

from .callbacks import save_panel
from .data import KINDS, Sample, read_instance_labels
from .export import TOO_FEW_GROUPS

log = logging.getLogger("train.evaluate")

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MARKER_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
MIN_SIZES = (4, 8, 12, 16, 24, 32, 48)
SCALE_SHIFTS = (0.5, 2.0, 3.0)
LIGHT_KINDS = ("brightfield", "tissue")


@dataclass
class Original:
    """A validation image as a user would bring it: the original file and its truth."""
    sample_id: str
    kind: str
    group: int
    image: np.ndarray    # float32 RGB as read by nuclei_app.imageio
    labels: np.ndarray   # int32 instance ids


def originals(samples: list[Sample]) -> list[Original]:
    return [Original(s.sample_id, s.kind, s.group, read_image(s.files.image_path), read_instance_labels(s.files))
            for s in samples]


def training_model(keras_model, config, normalisation: Normalisation, multiple: int) -> NucleiModel:
    """A trained Keras model with the settings its folder will carry, for the pipeline."""
    metadata = {"input": {"normalisation": asdict(normalisation), "size_multiple": multiple},
                "scale": {"diameter": config.diameter}, "inference": asdict(InferenceSettings())}
    return NucleiModel(keras_model, metadata, Path("."), source="training run")


def predict_all(model: NucleiModel | list[NucleiModel], images: list[Original], tta: bool | None = None,
                diameters: list[float | None] | None = None) -> list[Prediction]:
    """``model``: one for every image, or one each (``shipping``'s)."""
    models = model if isinstance(model, list) else [model] * len(images)
    diameters = diameters or [None] * len(images)
    return [predict(m, o.image, tta=tta, diameter=d) for m, o, d in zip(models, images, diameters)]


def shipping(model: NucleiModel, settings: list[PostprocessSettings]) -> list[NucleiModel]:
    """``model`` as a folder shipping each image's settings runs it: the automatic diameter's
    check measures the nuclei found with the folder's tuned settings (``pipeline``), so a
    training-time model (default settings) is not what a user gets. An export found 0.341 for
    a fine-tuned model that, rescored from its folder, was 0.291 (its minimum size 48, not 12)."""
    copies = {s: replace(model, metadata={**model.metadata, "postprocess": s.model_values()}) for s in set(settings)}
    return [copies[s] for s in settings]


def shipped_as(model: NucleiModel, settings: PostprocessSettings) -> NucleiModel:
    """``shipping`` for one setting: ``model`` as a folder shipping ``settings`` runs it."""
    return shipping(model, [settings])[0]


def score_labels(images: list[Original], predicted: list[np.ndarray]) -> dict:
    return by_kind(images, [image_scores(o.labels, p) for o, p in zip(images, predicted)])


def by_kind(images: list[Original], scores: list) -> dict:
    """Per-image scores averaged over all images and over each kind's."""
    report = {"all": mean_scores(scores)}
    for kind in KINDS:
        of_kind = [sc for sc, o in zip(scores, images) if o.kind == kind]
        if of_kind:
            report[kind] = mean_scores(of_kind)
    return report


def scores_with(model, images, predictions, settings_per_image: list[PostprocessSettings]) -> list[ImageScores]:
    """Each image's scores, its labels drawn with its own settings."""
    return [image_scores(o.labels, labels_for(model, p, s)) for o, p, s in zip(images, predictions, settings_per_image)]


def image_aps(model, images, predictions, settings: PostprocessSettings) -> np.ndarray:
    return np.array([sc.mean_ap for sc in scores_with(model, images, predictions, [settings] * len(images))])


def folds(images: list[Original]) -> np.ndarray:
    """0/1 per image: source groups alternate between two folds within each kind."""
    fold_of_group = {}
    for kind in KINDS:
        for index, group in enumerate(sorted({o.group for o in images if o.kind == kind})):
            fold_of_group[group] = index % 2
    return np.array([fold_of_group[o.group] for o in images])


class Tuner:
    """Coordinate search of the post-processing settings on any subset of the images; each
    setting is scored once per image and the table reused for every subset."""

    def __init__(self, model, images, predictions):
        self.model, self.images, self.predictions = model, images, predictions
        self.table: dict[PostprocessSettings, np.ndarray] = {}

    def aps(self, settings: PostprocessSettings) -> np.ndarray:
        if settings not in self.table:
            self.table[settings] = image_aps(self.model, self.images, self.predictions, settings)
        return self.table[settings]

    def best(self, subset: np.ndarray) -> PostprocessSettings:
        best, best_ap = PostprocessSettings(), -1.0
        for threshold, marker in itertools.product(THRESHOLDS, MARKER_THRESHOLDS):
            candidate = replace(best, threshold=threshold, marker_threshold=marker)
            ap = float(self.aps(candidate)[subset].mean())
            if ap > best_ap:
                best, best_ap = candidate, ap
        for min_size in MIN_SIZES:
            candidate = replace(best, min_size=min_size)
            ap = float(self.aps(candidate)[subset].mean())
            if ap > best_ap:
                best, best_ap = candidate, ap
        return best


def tune(model, images, predictions, tune_enabled: bool = True):
    """(shipped settings, per-image settings for honest scores). Settings are tuned only where
    each image can be scored with settings tuned on other groups' images (two folds: a kind's
    groups alternate between them, so one group of each kind makes one fold)."""
    fold = folds(images)
    if not tune_enabled or len(set(fold)) < 2:   # the model's own: the defaults, or a fine-tuned model's base's
        if tune_enabled:
            # A trial: a lab's one validation image re-tuned the base's settings to itself, and
            # was then scored with them (0.9/0.98/12 against the base's 0.6/0.9/32).
            log.info("too few validation source groups of a kind to cross-tune: post-processing not tuned "
                     "(settings tuned on the images they are scored on would flatter them); %s kept",
                     settings_text(model.postprocess_settings))
        default = model.postprocess_settings
        return default, [default] * len(images)
    tuner = Tuner(model, images, predictions)
    shipped = tuner.best(np.ones(len(images), bool))
    per_fold = {f: tuner.best(fold != f) for f in (0, 1)}
    log.info("tuned post-processing: shipped %s; per fold %s", settings_text(shipped),
             {f: settings_text(s) for f, s in per_fold.items()})
    return shipped, [per_fold[f] for f in fold]


def settings_text(settings) -> str:
    """A log's words for ``PostprocessSettings`` (not its repr)."""
    return f"threshold {settings.threshold}, marker {settings.marker_threshold}, min size {settings.min_size}"


def scoring(images: list[Original], shipped_given: bool, tune_enabled: bool) -> str:
    """Which post-processing settings the scores used (as ``tune`` chose them)."""
    if shipped_given:
        return "shipped"
    if not tune_enabled:
        return "untuned"
    return "cross-tuned" if len(set(folds(images))) > 1 else TOO_FEW_GROUPS


def labels_with(model, predictions, settings_per_image) -> list[np.ndarray]:
    return [labels_for(model, p, s) for p, s in zip(predictions, settings_per_image)]


def rescaled(images: list[Original], factor: float) -> list[Original]:
    out = []
    for o in images:
        image = rescale_image(o.image, factor)
        out.append(replace(o, image=image, labels=resize_labels(o.labels, image.shape[:2])))
    return out


def light_images_changed(images: list[Original], change) -> list[Original]:
    """The brightfield and tissue images only, each with ``change(image)`` as its image."""
    return [replace(o, image=change(o.image).astype(np.float32)) for o in images if o.kind in LIGHT_KINDS]


def _hed(image: np.ndarray) -> np.ndarray:
    return rgb2hed(np.clip(image, 1e-3, 1.0))


def stain_shifted(images: list[Original], seed: int = 0) -> list[Original]:
    """Brightfield and tissue images with another stain balance, brightness and contrast."""
    rng = np.random.default_rng(seed)

    def shift(image: np.ndarray) -> np.ndarray:
        hed = _hed(image) * rng.uniform(0.7, 1.3, 3) + rng.normal(0, 0.02, 3)
        image = np.clip(hed2rgb(hed), 0, 1) * rng.uniform(0.8, 1.1) + rng.uniform(-0.05, 0.05)
        return np.clip(image, 0, 1) ** rng.uniform(0.7, 1.4)

    return light_images_changed(images, shift)


# Stronger stain shifts of the light images, each a fixed change of what the stains are rather
# than how much of them (``stain``): the kinds of light image the held-out set holds and DSB2018's
# training set lacks. Rows of a matrix mixing the H, E and DAB amounts (rgb2hed space).
RESTAINS = {
    "ihc": ((1, 0, 0), (0, 0, 1.5), (0, 0, 0)),      # eosin shown as DAB: yellow-brown around purple nuclei
    "dark": ((1.6, 0, 0), (0, 0.5, 0), (0, 0, 1)),   # haematoxylin-heavy, little eosin: dense purple fields
}
LIGHT_SHIFTS = ("stain", *RESTAINS, "grey")


def restained(images: list[Original], name: str) -> list[Original]:
    """The light images with another stain (``RESTAINS``), or as greyscale (``grey``)."""
    if name == "grey":
        return light_images_changed(images, lambda image: np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1))
    mix = np.array(RESTAINS[name], float)
    return light_images_changed(images, lambda image: np.clip(hed2rgb(_hed(image) @ mix), 0, 1))


def light_shifts(images: list[Original]) -> dict[str, list[Original]]:
    return {"stain": stain_shifted(images), **{name: restained(images, name) for name in (*RESTAINS, "grey")}}


def diameter_report(images: list[Original], predictions: list[Prediction]) -> dict:
    """How far the diameter the pipeline used is from the truth's median diameter."""
    errors = []
    for o, p in zip(images, predictions):
        truth = median_diameter(o.labels)
        if truth and p.diameter:
            errors.append(abs(math.log(p.diameter / truth)))
    errors = np.array(errors)
    return {"images": int(errors.size),
            "median_error": round(float(np.exp(np.median(errors)) - 1), 4) if errors.size else None,
            "within_15_percent": round(float((errors < math.log(1.15)).mean()), 4) if errors.size else None,
            "within_30_percent": round(float((errors < math.log(1.30)).mean()), 4) if errors.size else None}


def starting_settings_win(kept: list[ImageScores], moved: list[ImageScores], start: PostprocessSettings) -> bool:
    """Whether the settings the first pass ran with (``start``: the defaults, or a fine-tuned model's
    base's) score higher (``kept``, each image's scores) than the tuned ones once the diameter check
    uses those (``moved``): tuning takes the first pass's scales as given, and a few images' tuning
    can move them for the worse (a fine-tuned model's tuned settings scored 0.297 on its 5
    validation images, its base's 0.354)."""
    kept_ap, moved_ap = (float(np.mean([sc.mean_ap for sc in scores])) for scores in (kept, moved))
    if kept_ap > moved_ap:
        log.info("tuned settings score %.4f once the diameter check uses them, the starting ones (%s) %.4f: "
                 "keeping those", moved_ap, settings_text(start), kept_ap)
    return kept_ap > moved_ap


def evaluate_model(keras_model, samples: list[Sample], config, multiple: int,
                   start: PostprocessSettings | None = None) -> dict:
    """The validation report stored in nuclei.json and the model card. ``start``: the settings
    the first pass (the one tuned on) runs with, where better known than the defaults: a
    fine-tuned model's base's (its diameter check uses them; tuned on default-settings
    predictions, a fine-tuned model shipped a minimum size of 48 that cost it 0.06)."""
    model = shipped_as(training_model(keras_model, config, Normalisation(), multiple), start or PostprocessSettings())
    report = evaluate(model, originals(samples), tune_enabled=config.tune)
    report["validation_ids"] = sorted(s.sample_id for s in samples)
    return report


def evaluate_holdout(keras_model, samples: list[Sample], config, report: dict, multiple: int) -> dict:
    """Scores of a held-out source group (never trained on), with the shipped settings."""
    settings = [PostprocessSettings(**report["postprocess"])] * len(samples)
    models = shipping(training_model(keras_model, config, Normalisation(), multiple), settings)
    images = originals(samples)
    scores = score_labels(images, labels_with(models[0], predict_all(models, images), settings))
    log.info("held-out source group %d: mean AP %.4f", samples[0].group, scores["all"]["mean_ap"])
    return {"scores": scores, "group": int(samples[0].group), "ids": sorted(s.sample_id for s in samples),
            "median_diameter": float(np.median([s.diameter for s in samples]))}


def compare_with_start(start: NucleiModel, keras_model, samples: list[Sample], config, multiple: int) -> dict:
    """A fine-tuning run's starting model and its result on the run's validation images, both
    with the starting model's shipped post-processing settings: what the network's change
    bought, with nothing tuned on the images scored (a few images' own tuning flatters)."""
    images = originals(samples)
    settings = [start.postprocess_settings] * len(images)
    tuned = shipped_as(training_model(keras_model, config, Normalisation(), multiple), start.postprocess_settings)
    scores = {name: score_labels(images, labels_with(model, predict_all(model, images), settings))
              for name, model in (("before", start), ("after", tuned))}
    log.info("fine-tuning, on the validation images with the starting model's settings: mean AP %.4f before, "
             "%.4f after", scores["before"]["all"]["mean_ap"], scores["after"]["all"]["mean_ap"])
    return scores


def evaluate(model: NucleiModel, images: list[Original], tune_enabled: bool = True,
             shipped: PostprocessSettings | None = None) -> dict:
    how_scored = scoring(images, shipped is not None, tune_enabled)
    first = plain = None
    if shipped is None:
        plain = first = predict_all(model, images)
        shipped, per_image = tune(model, images, first, tune_enabled)
        if any(s != model.postprocess_settings for s in per_image):
            plain = None   # the tuned settings move the diameter check: predicted again below
    else:  # re-scoring a finished folder: its own shipped settings, which its model carries
        per_image = [shipped] * len(images)
    # Every pass as the folder will run, each image with the settings it is scored with (its
    # fold's: nothing tuned on an image decides its scale either).
    models = shipping(model, per_image)
    plain = plain if plain is not None else predict_all(models, images)
    scores = scores_with(model, images, plain, per_image)
    if first is not None and plain is not first:
        start = model.postprocess_settings
        kept = scores_with(model, images, first, [start] * len(images))
        if starting_settings_win(kept, scores, start):
            shipped, per_image, plain, scores, how_scored = start, [start] * len(images), first, kept, "starting"
            models = shipping(model, per_image)
    report = {
        "postprocess": shipped.model_values(),
        "postprocess_scoring": how_scored,
        "validation": by_kind(images, scores),
        "validation_images": {kind: sum(o.kind == kind for o in images) for kind in KINDS},
        "diameter_estimate": diameter_report(images, plain),
    }
    truth = [median_diameter(o.labels) for o in images]
    known = predict_all(models, images, diameters=truth)
    report["validation_true_diameter"] = score_labels(images, labels_with(model, known, per_image))
    with_tta = predict_all(models, images, tta=True)
    report["validation_tta"] = score_labels(images, labels_with(model, with_tta, per_image))
    report["shift"] = {}
    for factor in SCALE_SHIFTS:
        shifted = rescaled(images, factor)
        predicted = predict_all(models, shifted)
        report["shift"][f"x{factor:g}"] = score_labels(shifted, labels_with(model, predicted, per_image))
    light = [i for i, o in enumerate(images) if o.kind in LIGHT_KINDS]
    if light:
        settings, light_models = [per_image[i] for i in light], [models[i] for i in light]
        for name, shifted in light_shifts(images).items():
            predicted = predict_all(light_models, shifted)
            report["shift"][name] = score_labels(shifted, labels_with(model, predicted, settings))
    log.info("validation: %s", {k: round(v["mean_ap"], 4) for k, v in report["validation"].items()})
    log.info("shift: %s", {n: round(r["all"]["mean_ap"], 4) for n, r in report["shift"].items()})
    return report


def save_figures(model, folder: Path, samples: list[Sample], report: dict) -> None:
    figures = Path(folder) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(Path(folder) / "log.csv", figures / "learning_curves.png")
    plot_shift_validation(report, figures / "shift_validation.png")
    from .train import panel_samples  # the same fixed images the training panels showed

    save_panel(model, panel_samples(samples, 3), figures / "predictions.png",
               title="validation: image | ground truth | prediction")


def shift_rows(report: dict) -> dict[str, dict]:
    """Condition -> per-kind scores, in reading order."""
    rows = {"x1": report["validation"]}
    names = [f"x{factor:g}" for factor in SCALE_SHIFTS] + list(LIGHT_SHIFTS)
    rows.update({name: report["shift"][name] for name in names if name in report.get("shift", {})})
    return rows


def plot_shift_validation(report: dict, out: Path) -> None:
    rows = shift_rows(report)
    kinds = ["all"] + [k for k in KINDS if k in report["validation"]]
    figure, axis = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(rows)
    for index, (name, scores) in enumerate(rows.items()):
        # The stain sets hold only the light images: their "all" would not compare with the others'.
        values = [np.nan if (name in LIGHT_SHIFTS and kind == "all") else scores.get(kind, {}).get("mean_ap", np.nan)
                  for kind in kinds]
        axis.bar(np.arange(len(kinds)) + index * width, values, width, label=name)
    axis.set_xticks(np.arange(len(kinds)) + width * (len(rows) - 1) / 2, kinds)
    axis.set_ylabel("mean AP (IoU .50-.95)")
    axis.set_ylim(0, 1)
    axis.set_title("shift validation: the validation images rescaled, and re-stained")
    axis.legend(fontsize=8, ncol=len(rows))
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)


def plot_learning_curves(csv_path: Path, out: Path) -> None:
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, (loss_axis, dice_axis) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, axis in (("loss", loss_axis), ("body_dice", dice_axis)):
        axis.plot(epochs, [float(r[key]) for r in rows], label="train")
        axis.plot(epochs, [float(r["val_" + key]) for r in rows], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title({"loss": "BCE + Dice loss", "body_dice": "nucleus Dice"}[key])
        axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)


def evaluate_folder(model_source: str, data: Path, precision: str = "float32", complete: bool = False,
                    max_images: int | None = None, all_images: bool = False) -> dict:
    """Re-scores a model folder on its own validation split (ids from its nuclei.json), with
    the network computing in ``precision`` (float32, bfloat16). ``complete``: every one of
    those images must be in ``data`` (scores that replace the recorded ones). ``max_images``:
    the first N of them by id only, a quick check (a trial had only the 10-minute whole).
    ``all_images``: every annotated image in ``data`` instead, a lab's own test set (two models,
    the bundled one and one fine-tuned from it, scored on the same images)."""
    from nuclei_app.sources import describe, resolve_model

    from .data import find_samples, load_samples

    model = resolve_model(model_source, fallback=False)
    model.set_precision(precision)
    chosen = (load_samples(find_samples(data), model.normalisation, model.diameter) if all_images
              else validation_samples(model, data, complete))
    validation = sorted(chosen, key=lambda s: s.sample_id)[:max_images]
    report = evaluate(model, originals(validation), shipped=model.postprocess_settings)
    # Printed, not stored: two models' saved outputs looked the same (a trial).
    report["scored"] = f"{describe(model)}, digest {model.digest()}; {settings_text(model.postprocess_settings)}"
    report["arithmetic"] = model.precision   # what computed: int8 falls back to float32 where it can't be had
    if all_images:
        report["trained_on"] = trained_on_these(model.metadata, chosen)
    return report


def trained_on_these(metadata: dict, samples: list[Sample]) -> str | None:
    """A warning where ``samples`` are exactly the set of files the model was trained from (its
    ``data_digest``; a folder holding more, or fewer, is not recognised): a trial scored a
    fine-tuned model on its own 6 images with ``--all-images``, 5 of them trained on."""
    from .data_record import files_digest

    training = metadata.get("training")
    recorded = training.get("data_digest") if isinstance(training, dict) else None
    if not recorded or files_digest(sorted(samples, key=lambda s: s.sample_id)) != recorded:
        return None
    # Never trained on: the validation images, and a --holdout-group run's held-out source.
    unseen = len(training.get("validation_ids") or []) + len((metadata["metrics"].get("holdout") or {}).get("ids", []))
    held_out = ("every one of them was trained on" if scored_on_training_image(training) else
                f"all but {plural(unseen, 'image', 'images')} of them were trained on")
    return (f"these are the images this model was trained from (the same files, by its data_digest): {held_out}, "
            "so these scores flatter it; score a test set of images it never saw.")


def validation_samples(model: NucleiModel, data: Path, complete: bool = False) -> list[Sample]:
    """A model's validation images in ``data``: the ids its nuclei.json recorded (only those are
    read), or for folders from before they were recorded, the split its seed gives."""
    from .data import DatasetError, find_samples, load_samples, split_train_validation

    training = model.metadata["training"]
    recorded = set(training.get("validation_ids") or [])
    if not recorded:
        if complete:
            raise DatasetError("the model's nuclei.json records no validation ids, so it can't be checked that "
                               f"{data} holds all its validation images: its scores are not rewritten")
        samples = load_samples(find_samples(data), model.normalisation, model.diameter)
        return split_train_validation(samples, training["validation_fraction"], training["split_seed"])[1]
    files = [f for f in find_samples(data) if f.sample_id in recorded]
    found_all_of(len(files), recorded, data, training, complete, "validation images")
    return load_samples(files, model.normalisation, model.diameter)


def found_all_of(found: int, wanted: set[str], data: Path, training: dict, complete: bool, what: str,
                 whose: str = "the model") -> None:
    """Refuses a ``data`` folder holding none of the ``wanted`` images (or, ``complete``, not all),
    naming the folder ``whose`` training ran on; warns where it holds only some."""
    from nuclei_app.config import PROJECT_DIR

    from .data import DatasetError

    if found == len(wanted):
        return
    trained_on = training.get("data") or (training.get("config") or {}).get("data")   # relative to the project
    where = f"the folder {whose} was trained on" + (f" ({(PROJECT_DIR / trained_on).resolve()})" if trained_on else "")
    if not found or complete:
        raise DatasetError(f"{found} of {whose}'s {len(wanted)} {what} (ids in its nuclei.json) are in {data}"
                           f"{'; all are needed here' if found else ''}: give --data {where}")
    log.warning("only %d of %s's %d %s are in %s: the scores are theirs alone", found, whose, len(wanted), what, data)


def score_ids(model_source: str, data: Path, ids: list[str], training: dict) -> dict:
    """A model folder's scores on given training-set images (e.g. another run's held-out group,
    ``training`` that run's record)."""
    from nuclei_app.sources import resolve_model

    from .data import find_samples, load_samples

    model = resolve_model(model_source, fallback=False)
    wanted = set(ids)
    files = [f for f in find_samples(data) if f.sample_id in wanted]
    found_all_of(len(files), wanted, data, training, False, "held-out images", whose="the --holdout-of run")
    images = originals(load_samples(files, model.normalisation))
    settings = model.postprocess_settings
    return score_labels(images, labels_with(model, predict_all(model, images), [settings] * len(images)))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from .__main__ import positive_int
    from .data import DEFAULT_DATA_DIR, DatasetError
    from .export import VALIDATION_SPLIT, report_tables

    parser = argparse.ArgumentParser(prog="python -m train.evaluate",
                                     description="Score a model folder on its validation split (or, with "
                                                 "--all-images, on a folder of annotated images of your own).")
    parser.add_argument("--model", default="assets/model", help="model source (default: assets/model)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR,
                        help="the annotated images: the folder the model was trained from (its validation ids are "
                             "scored), or with --all-images a test set of your own (default: the DSB2018 training "
                             "set)")
    parser.add_argument("--holdout-of", type=Path, metavar="FOLDER",
                        help="score only the source group another run (trained with --holdout-group) held out")
    parser.add_argument("--write", action="store_true",
                        help="also store the new scores in the (local) model folder: nuclei.json's metrics and the "
                             "model card, e.g. after a change to the inference defaults")
    parser.add_argument("--precision", choices=[p for p in PRECISIONS if p != "auto"], default="float32",
                        help="the network's arithmetic (as segment --precision); the model card's scores are float32's")
    parser.add_argument("--shift-figure", type=Path, metavar="PNG",
                        help="also draw the shift validation as a bar chart (the README's docs/shift_validation.png)")
    parser.add_argument("--max-images", type=positive_int, metavar="N",
                        help="score only the first N validation images (by id): a quick check in a minute or two; "
                             "the model card's scores are of them all")
    parser.add_argument("--all-images", action="store_true",
                        help="score every annotated image in --data (your own test set), not the model's "
                             "validation split: compare models on the same images")
    args = parser.parse_args(argv)
    if args.all_images and (args.write or args.holdout_of):
        parser.error("--all-images scores a folder of your own: without --write or --holdout-of")
    if args.write and (args.holdout_of or not Path(args.model).is_dir() or args.precision != "float32"
                       or args.max_images):
        parser.error("--write stores a full evaluation (float32) in a local model folder: give --model a folder, "
                     "without --holdout-of, --precision or --max-images")
    from nuclei_app.model import ModelLoadError

    from .export import metrics_table

    try:
        if args.holdout_of:
            ids, training = held_out_by(args.holdout_of)
            print(metrics_table(score_ids(args.model, args.data, ids, training)))
            return 0
        report = evaluate_folder(args.model, args.data, args.precision, complete=args.write,
                                 max_images=args.max_images, all_images=args.all_images)
    except (DatasetError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Model: {report['scored']}")
    if report.get("trained_on"):
        print(f"Warning: {report['trained_on']}")
    print(f"Network arithmetic: {report['arithmetic']}\n")  # the tables themselves don't record it
    if args.max_images:
        what = "images" if args.all_images else "validation images"
        print(f"The first {args.max_images} {what} only (--max-images): not the model card's scores.\n")
    print(report_tables(report, f"Every annotated image in {args.data} (--all-images)" if args.all_images
                        else VALIDATION_SPLIT))
    if args.shift_figure:
        plot_shift_validation(report, args.shift_figure)
        print(f"shift validation figure: {args.shift_figure}")
    if args.write:
        print(f"scores written to {rewrite_metrics(Path(args.model), report)}")
    return 0


def held_out_by(folder: Path) -> tuple[list[str], dict]:
    """(the ids of the source group a model folder's run held out, its training record)."""
    from nuclei_app.model import ModelLoadError, verify_folder

    metadata = verify_folder(Path(folder))   # the run's folder itself: "its model folder is ..."
    holdout = (metadata.get("metrics") or {}).get("holdout")
    if not holdout:
        raise ModelLoadError(f"{folder} was not trained with --holdout-group, so it held no source group out: give "
                             "--holdout-of the model folder of a run that was (python -m train --holdout-group N).")
    return holdout["ids"], metadata.get("training", {})


def rewrite_metrics(folder: Path, report: dict) -> Path:
    """Replaces the scores this evaluation recomputed in a model folder's nuclei.json (others,
    such as a training run's held-out group, stay) and rewrites its model card from it."""
    import json

    from nuclei_app.model import METADATA_FILE, MODEL_CARD, verify_folder

    from .export import METRIC_KEYS, model_card

    metadata = verify_folder(folder)
    metadata.setdefault("metrics", {}).update({key: report[key] for key in METRIC_KEYS if key in report})
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    (folder / MODEL_CARD).write_text(model_card(metadata))
    verify_folder(folder)
    return folder


if __name__ == "__main__":
    raise SystemExit(main())
