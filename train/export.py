"""Export the self-describing model folder, and publish it to the Hugging Face Hub.

``python -m train.export --push-to-hub OWNER/NAME --model DIR`` publishes an existing folder.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from nuclei_app.config import InferenceSettings, Normalisation
from nuclei_app.model import FORMAT, METADATA_FILE, MODEL_CARD, ModelLoadError, verify_folder
from nuclei_app.sources import HF_PREFIX, parse_hub_source
from nuclei_app.validation_record import (data_folder_name, held_out_by_image, scored_on_training_image,
                                          trained_on_dsb2018, training_data_path)
from nuclei_app.wording import plural

METRIC_KEYS = ("validation", "validation_tta", "validation_true_diameter", "shift", "diameter_estimate",
               "validation_images", "holdout", "postprocess_scoring")
OUTPUT_MEANING = {
    "body": "probability that the pixel belongs to a nucleus",
    "boundary": "probability that the pixel is on the inner boundary of a nucleus",
    "centre": "how central the pixel is in its nucleus: distance to its edge over the largest in that nucleus "
              "(1 at the centre); the watershed's seeds",
}


def build_metadata(report: dict, run: dict, normalisation: Normalisation, config, multiple: int) -> dict:
    return {
        "format": FORMAT,
        "name": "nuclei-unet",
        "input": {"channels": "RGB", "dtype": "float32", "normalisation": asdict(normalisation),
                  "size_multiple": multiple},
        "outputs": config.outputs,
        "output_meaning": {name: OUTPUT_MEANING[name] for name in config.outputs},
        "scale": {"diameter": config.diameter,
                  "meaning": "median nucleus diameter (px) the network was trained at; images are "
                             "rescaled so that their nuclei have it"},
        "postprocess": report["postprocess"],
        "inference": asdict(InferenceSettings()),
        "training": {
            "crop_size": config.crop_size,
            "split_seed": config.seed,
            "validation_fraction": config.validation_fraction,
            "base_filters": config.base_filters,
            "depth": config.depth,
            "config": run["config"],
            "data": config.to_json()["data"],
            "validation_ids": report.get("validation_ids", []),
            # sha256 of the images and masks trained on (train.data_record): the same data, elsewhere?
            "data_digest": run.get("data", {}).get("digest"),
            "command": run["command"],
            # Each --resume's command: the first alone may not make this model (--epochs raised).
            "resumed": [entry["command"] for entry in run.get("resumed", [])],
            "code_version": run["code_version"],
            "versions": {k: run[k] for k in ("tensorflow", "keras", "python")},
            "machine": run["machine"],
            **report.get("training", {}),
        },
        "metrics": {key: report[key] for key in METRIC_KEYS if key in report},
    }


def export_model_folder(model, folder: Path, report: dict, run: dict, normalisation: Normalisation, config) -> Path:
    import keras

    folder = Path(folder)
    # Keras refuses to save over an existing folder: write a fresh one, then swap it in.
    staging = folder.with_name(folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    keras.saving.save_model(model, str(staging), zipped=False)
    if (staging / "assets").is_dir() and not any((staging / "assets").iterdir()):
        (staging / "assets").rmdir()  # empty for this model; git would not keep it anyway
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    multiple = 2 ** config.depth
    metadata = build_metadata(report, run, normalisation, config, multiple)
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    (folder / MODEL_CARD).write_text(model_card(metadata))
    verify_folder(folder)
    return folder


def maps_text(outputs: list[str]) -> str:
    if "centre" in outputs:
        return ("It predicts three maps: nucleus **body**, nucleus **boundary**, and each nucleus's **centre** "
                "(1 at its centre, falling to 0 at its edge), whose peaks seed the nuclei")
    return "It predicts two maps, nucleus **body** and nucleus **boundary**"


def each_output(outputs: list[str]) -> str:
    return "both outputs" if len(outputs) == 2 else f"all {len(outputs)} outputs"


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metrics_table(metrics: dict) -> str:
    lines = ["| images | n | mean AP (IoU .50-.95) | AP@0.5 | Dice | IoU | pixel accuracy |",
             "|---|---|---|---|---|---|---|"]
    for kind, m in metrics.items():
        lines.append(f"| {kind} | {m['images']} | {_fmt(m['mean_ap'])} | {_fmt(m['ap50'])} | "
                     f"{_fmt(m['dice'])} | {_fmt(m['iou'])} | {_fmt(m['pixel_accuracy'])} |")
    return "\n".join(lines)


def shift_table(metrics: dict, unshifted: str = "x1 (validation)") -> str:
    """Mean AP per condition (rows) and image kind (columns); ``unshifted`` names the images' own row."""
    rows = {unshifted: metrics["validation"]}
    rows.update({name: scores for name, scores in metrics.get("shift", {}).items()})
    kinds = list(metrics["validation"])
    lines = ["| condition | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for name, scores in rows.items():
        cells = [f"{_fmt(scores[k]['mean_ap'])} ({scores[k]['images']})" if k in scores else "-" for k in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# postprocess_scoring where the validation split can't be cross-tuned (train.evaluate.tune)
TOO_FEW_GROUPS = "untuned: too few groups"
VALIDATION_SPLIT = "Validation split"   # report_tables' images where they are the model's validation split


def report_tables(metrics: dict, scored: str = VALIDATION_SPLIT) -> str:
    """Everything ``python -m train.evaluate`` prints and the model card shows; ``scored``: the
    images, where they are not the validation split (``--all-images``)."""
    parts = [f"{scored}, as the CLI and the app run by default (automatic diameter; flip TTA on "
             "light-background images only):", metrics_table(metrics["validation"])]
    if "validation_true_diameter" in metrics:
        parts += ["", "Same images given their true median diameter (the estimator's share of the error):",
                  metrics_table(metrics["validation_true_diameter"])]
    if "validation_tta" in metrics:
        parts += ["", "With flip test-time augmentation on every image (--tta):",
                  metrics_table(metrics["validation_tta"])]
    if "shift" in metrics:
        parts += ["", "Shift validation, mean AP (images): x0.5 / x2 / x3 = the images above rescaled; "
                  "stain = brightfield and tissue images with another stain balance and brightness; ihc = their "
                  "eosin shown as DAB (yellow-brown); dark = haematoxylin-heavy; grey = greyscale:",
                  shift_table(metrics, "x1 (validation)" if scored == VALIDATION_SPLIT else "x1")]
    holdout = metrics.get("holdout")
    if holdout:
        parts += ["", f"Held-out source group {holdout['group']} ({len(holdout['ids'])} images, median nucleus "
                  f"{holdout['median_diameter']:.0f} px), never trained on:", metrics_table(holdout["scores"])]
    estimate = metrics.get("diameter_estimate")
    if estimate and estimate.get("images"):
        parts += ["", f"Diameter used vs. the truth's median (x1, {estimate['images']} images): median error "
                  f"{estimate['median_error']:.0%}, within 15 %: {estimate['within_15_percent']:.0%}, "
                  f"within 30 %: {estimate['within_30_percent']:.0%}."]
    return "\n".join(parts)


def card_front_matter(metadata: dict) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    overall = metadata["metrics"]["validation"]["all"]
    training = metadata["training"]
    dsb = trained_on_dsb2018(training)
    images = training.get("images") or {}
    split = (f"{plural(images.get('validation'), 'image', 'images')} held out by image" if held_out_by_image(training)
             else f"{training.get('validation_fraction', 0.2):.0%} validation split")
    names = {"mean_ap": "DSB mean AP (IoU 0.50-0.95)", "ap50": "AP@0.5", "dice": "Dice", "iou": "IoU",
             "pixel_accuracy": "pixel accuracy"}
    results = [
        EvalResult(task_type="image-segmentation", task_name="Nuclei instance segmentation",
                   dataset_type="dsb2018" if dsb else "custom",
                   dataset_name=f"DSB2018 stage1_train, {split}" if dsb else f"{data_folder_name(training) or 'own images'}, {split}",
                   dataset_split="validation", metric_type=key, metric_name=name, metric_value=round(overall[key], 4))
        for key, name in names.items()
    ]
    if scored_on_training_image(training):
        results = None   # scores of a training image are no validation result to publish (a trial)
    base = training.get("fine_tuned_from") or {}
    # Hugging Face's base_model is a repo id: only for a model fine-tuned from the Hub.
    base_repo = parse_hub_source(base["source"]).repo_id if str(base.get("source")).startswith(HF_PREFIX) else None
    data = ModelCardData(license="mit", library_name="keras", model_name="nuclei-unet", base_model=base_repo,
                         pipeline_tag="image-segmentation", datasets=["dsb2018"] if dsb else None, eval_results=results,
                         tags=["microscopy", "nuclei", "cell-segmentation", "u-net", "biology"])
    return f"---\n{data.to_yaml()}\n---\n"


def training_data_text(training: dict) -> str:
    """What the model was trained on, from its own record (a smoke run, or a run on one's own
    images, must not claim DSB2018's 80:20 split: a new-user trial's 4-image run did)."""
    data = training_data_path(training)
    if Path(data).parts[-2:] == ("assets", "samples"):
        return ("The four bundled sample images (`assets/samples`): a smoke-test model from `--preset tiny`, "
                "for checking the pipeline, not for use.")
    images = training.get("images")   # older folders did not record it
    counts = f" {images['train']} training and {images['validation']} validation images," if images else ""
    if scored_on_training_image(training):   # "4 training and 1 validation" read as 5 images (a trial)
        counts = f" {plural(images['train'], 'training image', 'training images')},"
    if trained_on_dsb2018(training):
        source = f"DSB2018 stage 1 training set (BBBC038v1, Broad Institute, CC0) with annotation fixes, from `{data}`"
    else:
        source = f"The images and masks in `{data}` (not DSB2018's training set)"
    if scored_on_training_image(training):
        return (f"{source}:{counts} **too few images for a validation split: the model was validated on an image "
                "it trained on, so its scores below say nothing about new images.**")
    if held_out_by_image(training):
        return (f"{source}:{counts} held out **by image**: they are of one source (size, kind and appearance), so "
                "the split by source group had none to hold out; validation images may look much like training "
                "ones, which flatters the scores below.")
    return (f"{source}:{counts} split {training.get('validation_fraction', 0.2):.0%} for validation by **source "
            f"group**, per image kind, seed {training['split_seed']}: images are grouped by size, kind and appearance "
            "(DSB2018 holds many tiles of one mosaic or experiment) and whole groups go to one side. The validation "
            "ids are listed in `nuclei.json`.")


def unseen_images_text(training: dict) -> str:
    """The limitation of images unlike the training data, in the terms of this model's own data."""
    if trained_on_dsb2018(training):
        return ("- The held-out DSB2018 test set holds kinds not in training (other H&E magnifications, IHC);\n"
                "  expect lower scores there than on this validation split.")
    # A fine-tuned model's card named DSB2018's test set, which says nothing of the user's images.
    return (f"- Images unlike those in `{training_data_path(training)}` (another stain, magnification or "
            "microscope)\n  are likely to score lower than this validation split: check them by eye.")


def scoring_text(metrics: dict, training: dict | None = None) -> str:
    scoring = metrics.get("postprocess_scoring", "cross-tuned")   # older folders: cross-tuned at export
    if scoring == "shipped":
        return ("Scored with the folder's shipped post-processing settings (tuned on the whole validation "
                "split at export), as `python -m train.evaluate --write` rescored it.")
    if scoring == "starting":
        return ("Post-processing settings: the ones the evaluation started from (the defaults, or a fine-tuned "
                "model's starting model's), which scored higher on the validation images than the settings tuned "
                "on them once the automatic diameter measured with those.")
    if scoring in ("untuned", "default"):   # "default": older folders' word for it
        # Two runs leave them untuned: a tiny trial, and one validated on an image it trained on
        # (settings tuned there would be fitted to it); the card named the tiny preset for both.
        why = ("the validation image is a training image" if scored_on_training_image(training or {})
               else "tuning turned off, as `--preset tiny` does")
        return (f"Post-processing settings not tuned ({why}): the defaults, or a fine-tuned model's "
                "starting model's.")
    if scoring == TOO_FEW_GROUPS:
        return ("Post-processing settings not tuned: the validation images hold too few source groups of each "
                "kind to score each image with settings tuned on other groups', and settings scored on the images "
                "they were tuned on flatter them. The defaults, or a fine-tuned model's starting model's, are used.")
    if scoring != "cross-tuned":
        return f"Post-processing settings: {scoring} (too few images or groups to cross-tune)."
    return ("The post-processing thresholds are cross-tuned: each validation image is scored with the "
            "settings tuned on the other half of the validation groups.")


def light_images_text(counts: dict, validation: dict | None = None) -> str:
    """The limitation the light-background kinds' validation counts give (a trial's card said
    "few brightfield (0 validation) ... lower than fluorescence" of a model scored on none);
    ``validation``: the scores by kind, where they say how the kinds compare."""
    kinds = {"brightfield": "brightfield", "tissue": "H&E tissue"}
    present = {name: counts.get(kind, 0) for kind, name in kinds.items()}
    scored = [f"{name} ({count} validation)" for name, count in present.items() if count]
    unscored = [name for name, count in present.items() if not count]
    lines = [f"- Few {' and '.join(scored)} images: their scores are noisy{lower_text(validation or {}, kinds)}."
             ] if scored else []
    if unscored:
        lines.append(f"- No {' or '.join(unscored)} image in the validation split: "
                     f"{'these kinds are' if len(unscored) > 1 else 'this kind is'} unscored.")
    return "\n".join(lines)


def lower_text(validation: dict, kinds: dict) -> str:
    """", and lower than fluorescence" where every light kind scored scores lower (a trial's card said so
    of a model validated on no fluorescence image)."""
    fluorescence = validation.get("fluorescence", {}).get("mean_ap")
    light = [validation[kind]["mean_ap"] for kind in kinds if kind in validation]
    return ", and lower than fluorescence" if fluorescence is not None and light and max(light) < fluorescence else ""


def rescoring_text(metrics: dict) -> str:
    """How to get these numbers again. A new-user trial reran the command the card gave and
    read other numbers (0.088 for 0.091): ``train.evaluate`` scores with the shipped settings."""
    if metrics.get("postprocess_scoring", "cross-tuned") == "cross-tuned":
        return ("`python -m train.evaluate --model PATH` rescores with the folder's shipped settings instead "
                "(tuned on the whole validation split, so a little higher: they were tuned on the images "
                "scored); `--write` stores those here.")
    return "Reproduce with `python -m train.evaluate --model PATH`."


def resumed_text(training: dict) -> str:
    resumed = training.get("resumed") or []
    if not resumed:
        return ""
    return f", continued with {', then '.join(f'`{command}`' for command in resumed)}"


def fine_tuned_text(training: dict, metrics: dict) -> str:
    """The card's account of a fine-tuning run: where its weights started, and the starting
    model's score on the same validation images next to the fine-tuned one's."""
    base = training.get("fine_tuned_from")
    if not base:
        return ""
    commit = f", commit {base['revision']}" if base.get("revision") else ""
    text = (f"\n## Fine-tuning\nStarted from the weights of `{base['source']}` (digest {base['digest']}{commit}), not "
            "random ones, keeping its network and nucleus scale.")
    compared = base.get("validation")
    if not compared:
        return text + f" It was not scored on this run's validation images: {base.get('not_scored')}.\n"
    before, after = compared["before"], compared["after"]
    rows = [f"| {kind} ({before[kind]['images']}) | {before[kind]['mean_ap']:.3f} | {after[kind]['mean_ap']:.3f} | "
            f"{metrics['validation'][kind]['mean_ap']:.3f} |" for kind in before]
    return text + (" Mean AP on this run's validation images: both networks with the starting model's "
                   "post-processing settings (what the weights' change bought), and the fine-tuned one with its "
                   "own (as in the metrics below):\n\n| images | starting model | fine-tuned | "
                   "fine-tuned, own settings |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")


def synthetic_stain_text(training: dict) -> str:
    share = training.get("config", {}).get("synthetic_stain", 0.0)
    if not share:
        return ""
    tissue = training.get("config", {}).get("synthetic_tissue", 0.0)
    drawn_as = f", {tissue:.0%} of those drawn as tissue with cytoplasm" if tissue else ""
    return (f"; {share:.0%} of the fluorescence crops rendered as stained light-background images "
            f"(H&E-, IHC- or brightfield-like{drawn_as}, `train/augment.py`)")


def averaged_text(training: dict) -> str:
    momentum = training.get("config", {}).get("weight_average", 0.0)
    return f" as a moving average (momentum {momentum:g})" if momentum else ""


def model_card(metadata: dict) -> str:
    training = metadata["training"]
    post = metadata["postprocess"]
    metrics = metadata["metrics"]
    timing = ""
    if training.get("fit_minutes") is not None:
        timing = (f"Training took {training['fit_minutes']} minutes ({training.get('crops_per_second')} crops/s, "
                  f"{training.get('epochs_per_second')} epochs/s) on {training['machine']}"
                  + (", in mixed bfloat16." if training.get("precision") == "bfloat16" else "."))
    return card_front_matter(metadata) + f"""
# nuclei-unet

A small U-Net that finds every cell nucleus in a microscopy image: fluorescence, brightfield
and H&E-stained tissue. {maps_text(metadata['outputs'])}; a marker-controlled watershed turns them
into one label per nucleus, so touching nuclei are split. Made for the Nuclei app (Streamlit)
and its batch CLI.

## Intended use
Counting and measuring nuclei in 2-D fluorescence, brightfield and H&E images. Not a
diagnostic tool. 3-D stacks, or stains unlike the training data, need checking by eye.

## How to use
```bash
python -m nuclei_app segment image.png --out results/ --model path/to/this/folder
python -m nuclei_app segment image.tif --out results/ --diameter 40 --channel 2
```
**Nucleus scale.** The network was trained with every image rescaled so that its median
nucleus is {metadata['scale']['diameter']:g} px across (`scale.diameter` in `nuclei.json`). Each
image is rescaled the same way before it is segmented, and the result mapped back to the
image's own size. The diameter is estimated per image (a scale-space blob estimate, checked
against the nuclei found and corrected once when they disagree; an estimate above 64 px, which
on a brightfield smear is the cells', is first replaced by the smallest size at which the
network's nuclei measure what it was told, and still do a step larger); give it with `--diameter PX`
(the app has a control) when you know it, or when the estimate is off: very sparse fields,
images with two populations of very different sizes, or mostly debris.

**Channel.** A fluorescence stack or colour composite is segmented on its nuclear channel,
chosen automatically or with `--channel N`; brightfield and H&E colour images use all three
colours.

Input to the network: RGB float, percentile-normalised per image ({metadata['input']['normalisation']['low_percentile']}-{metadata['input']['normalisation']['high_percentile']}%),
inverted when the background is light (so nuclei are always bright); padded to a multiple
of {metadata['input']['size_multiple']} and tiled when large. All of this is in `nuclei.json`, which the app and CLI read.

Tuned post-processing: body threshold {post['threshold']}, marker threshold
{post['marker_threshold']}, minimum size {post['min_size']} pixels at the canonical scale.

## Training data
{training_data_text(training)}
{fine_tuned_text(training, metrics)}
## Recipe
U-Net, {training['depth']} levels, {training['base_filters']} base filters, transposed-convolution up-sampling;
every training image rescaled by its own ground-truth median diameter to {metadata['scale']['diameter']:g} px;
{plural(training['epochs'], 'epoch', 'epochs')} x {plural(training['steps_per_epoch'], 'step', 'steps')} x batch {training['batch_size']} random {training['crop_size']}x{training['crop_size']} crops
(scale jitter x0.7-1.4 around the canonical diameter), Adam with cosine decay, BCE + Dice on
{each_output(metadata['outputs'])}; rare image kinds over-sampled; H&E stain jitter in HED space, hue/saturation,
colour, greyscale, gamma, contrast, blur, noise and inversion augmentation{synthetic_stain_text(training)}. The final
weights are shipped{averaged_text(training)} (no checkpoint is picked on validation).
{timing}

Command: `{training['command']}` (code {training['code_version']}){resumed_text(training)}.

## Validation metrics
Every number goes through the same pipeline as a user's image (original file, automatic
diameter, rescaling, tiling, watershed). {scoring_text(metrics, training)} {rescoring_text(metrics)}

{report_tables(metrics)}

## Limitations
{light_images_text(metrics['validation_images'], metrics['validation'])}
- Brightfield nuclei tend to be drawn slightly inside their true outline, which costs
  score at the stricter IoU thresholds.
{unseen_images_text(training)}
- The automatic diameter assumes one population of nuclei; set `--diameter` for fields of
  very different sizes or mostly debris.
"""


def push_to_hub(folder: Path, repo_id: str, private: bool = False, message: str | None = None,
                token: str | None = None) -> str:
    """Creates the repo if needed, uploads the folder; returns the commit hash to pin."""
    from huggingface_hub import HfApi

    verify_folder(Path(folder))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                             commit_message=message or "Upload nuclei model folder")
    return info.oid


def publish(folder: Path, repo_id: str, private: bool = False, message: str | None = None) -> int:
    """``push_to_hub`` with its outcome told, as both commands tell it; the exit status. A
    new-user trial without network got huggingface_hub's connection error as a 75-line
    traceback (only HTTP errors and OSError were caught)."""
    try:
        commit = push_to_hub(folder, repo_id, private, message)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - every Hub failure becomes one clear message
        again = " ".join(["python -m train.export --push-to-hub", repo_id, "--model", shlex.quote(str(folder))]
                         + (["--private"] if private else [])
                         + (["--revision-message", shlex.quote(message)] if message else []))
        print(f"error: upload to {repo_id} failed: {describe_upload_error(error)} The model folder {folder} is "
              f"unchanged; publish it later with: {again}", file=sys.stderr)
        return 1
    print(f"pushed {folder} to hf://{repo_id}@{commit}")
    return 0


def describe_upload_error(error: BaseException) -> str:
    from huggingface_hub import errors

    from nuclei_app.sources import http_status, root_cause

    error = root_cause(error)
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, errors.OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set (unset it to upload)."
    if isinstance(error, errors.HfHubHTTPError):
        status = http_status(error)
        if status in (401, 403):
            return f"the Hub refused the token ({status}): set HF_TOKEN to a token with write access to the repo."
        return f"the Hub answered with an error ({status or 'no status'}): {first_line}."
    if is_connection_error(error):
        return f"the Hugging Face Hub could not be reached ({type(error).__name__}: {first_line})."
    return f"{type(error).__name__}: {first_line}."


def is_connection_error(error: BaseException) -> bool:
    """A failure to reach the server: the HTTP client's own (huggingface_hub's httpx, or
    requests in older versions) or the system's."""
    module = type(error).__module__.split(".")[0]
    return isinstance(error, (ConnectionError, TimeoutError)) or module in ("httpx", "httpx2", "httpcore", "requests",
                                                                            "urllib3")


def hub_token_problem() -> str | None:
    """Why an upload can't start, checked before a training run (a trial's run learnt at its
    end that it had no token); None where a token is set."""
    from huggingface_hub import get_token

    if get_token():
        return None
    return ("--push-to-hub needs a Hugging Face token with write access: set HF_TOKEN (or log in with "
            "`hf auth login`), then run the command again.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.export", description="Publish a model folder to the Hugging Face Hub.")
    parser.add_argument("--model", type=Path, required=True, help="the model folder to upload")
    parser.add_argument("--push-to-hub", metavar="OWNER/NAME", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision-message", help="commit message")
    args = parser.parse_args(argv)
    return publish(args.model, args.push_to_hub, args.private, args.revision_message)


if __name__ == "__main__":
    sys.exit(main())
