"""Export the self-describing model folder, and publish it to the Hugging Face Hub.

``python -m train.export --push-to-hub OWNER/NAME --model DIR`` publishes an existing folder.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from nuclei_app.config import InferenceSettings, Normalisation
from nuclei_app.model import FORMAT, METADATA_FILE, MODEL_CARD, ModelLoadError, verify_folder

OUTPUTS = ["body", "boundary"]
OUTPUT_MEANING = {
    "body": "probability that the pixel belongs to a nucleus",
    "boundary": "probability that the pixel is on the inner boundary of a nucleus",
}


def build_metadata(report: dict, run: dict, normalisation: Normalisation, config, multiple: int) -> dict:
    return {
        "format": FORMAT,
        "name": "nuclei-unet",
        "input": {"channels": "RGB", "dtype": "float32", "normalisation": asdict(normalisation),
                  "size_multiple": multiple},
        "outputs": OUTPUTS,
        "output_meaning": OUTPUT_MEANING,
        "postprocess": report["postprocess"],
        "inference": asdict(InferenceSettings()),
        "training": {
            "crop_size": config.crop_size,
            "split_seed": config.seed,
            "validation_fraction": config.validation_fraction,
            "base_filters": config.base_filters,
            "depth": config.depth,
            "command": run["command"],
            "code_version": run["code_version"],
            "versions": {k: run[k] for k in ("tensorflow", "keras", "python")},
            "machine": run["machine"],
            **report.get("training", {}),
        },
        "metrics": {
            "validation": report["validation"],
            "validation_tta": report["validation_tta"],
            "validation_images": report["validation_images"],
        },
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


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metrics_table(metrics: dict) -> str:
    lines = ["| images | n | mean AP (IoU .50-.95) | AP@0.5 | Dice | IoU | pixel accuracy |",
             "|---|---|---|---|---|---|---|"]
    for kind, m in metrics.items():
        lines.append(f"| {kind} | {m['images']} | {_fmt(m['mean_ap'])} | {_fmt(m['ap50'])} | "
                     f"{_fmt(m['dice'])} | {_fmt(m['iou'])} | {_fmt(m['pixel_accuracy'])} |")
    return "\n".join(lines)


def card_front_matter(metadata: dict) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    overall = metadata["metrics"]["validation"]["all"]
    names = {"mean_ap": "DSB mean AP (IoU 0.50-0.95)", "ap50": "AP@0.5", "dice": "Dice", "iou": "IoU",
             "pixel_accuracy": "pixel accuracy"}
    results = [
        EvalResult(task_type="image-segmentation", task_name="Nuclei instance segmentation",
                   dataset_type="dsb2018", dataset_name="DSB2018 stage1_train, 20% validation split",
                   dataset_split="validation", metric_type=key, metric_name=name, metric_value=round(overall[key], 4))
        for key, name in names.items()
    ]
    data = ModelCardData(license="mit", library_name="keras", model_name="nuclei-unet",
                         pipeline_tag="image-segmentation", datasets=["dsb2018"], eval_results=results,
                         tags=["microscopy", "nuclei", "cell-segmentation", "u-net", "biology"])
    return f"---\n{data.to_yaml()}\n---\n"


def model_card(metadata: dict) -> str:
    training = metadata["training"]
    post = metadata["postprocess"]
    metrics = metadata["metrics"]
    timing = ""
    if training.get("fit_minutes") is not None:
        timing = (f"Training took {training['fit_minutes']} minutes ({training.get('crops_per_second')} crops/s, "
                  f"{training.get('epochs_per_second')} epochs/s) on {training['machine']}.")
    return card_front_matter(metadata) + f"""
# nuclei-unet

A small U-Net that finds every cell nucleus in a microscopy image: fluorescence, brightfield
and H&E-stained tissue. It predicts two maps, nucleus **body** and nucleus **boundary**; a
marker-controlled watershed turns them into one label per nucleus, so touching nuclei are
split. Made for the Nuclei app (Streamlit) and its batch CLI.

## Intended use
Counting and measuring nuclei in 2-D images at roughly the resolutions of the 2018 Data
Science Bowl (nuclei about 10-60 pixels across). Not a diagnostic tool. Images far outside
that scale, 3-D stacks, or stains unlike the training data will need checking by eye.

## How to use
```bash
python -m nuclei_app segment image.png --out results/ --model path/to/this/folder
```
Input: RGB float, percentile-normalised per image ({metadata['input']['normalisation']['low_percentile']}-{metadata['input']['normalisation']['high_percentile']}%),
inverted when the background is light (so nuclei are always bright); whole images at full
resolution, padded to a multiple of {metadata['input']['size_multiple']} and tiled when large. All of this is in
`nuclei.json`, which the app and CLI read.

Tuned post-processing (on the validation split): body threshold {post['threshold']},
marker threshold {post['marker_threshold']}, minimum size {post['min_size']} pixels.

## Training data
DSB2018 stage 1 training set (BBBC038v1, Broad Institute, CC0), 664 images with annotation
fixes. Deterministic 80:20 split stratified by image kind, seed {training['split_seed']}.

## Recipe
U-Net, {training['depth']} levels, {training['base_filters']} base filters, transposed-convolution up-sampling;
{training['epochs']} epochs x {training['steps_per_epoch']} steps x batch {training['batch_size']} random {training['crop_size']}x{training['crop_size']} crops,
Adam with cosine decay, BCE + Dice on both outputs; rare image kinds over-sampled; scale,
flip/rotation, colour, greyscale, gamma, blur, noise and inversion augmentation.
{timing}

Command: `{training['command']}` (code {training['code_version']}).

## Validation metrics
Without test-time augmentation:

{metrics_table(metrics['validation'])}

With flip test-time augmentation (`--tta`):

{metrics_table(metrics['validation_tta'])}

The thresholds were tuned on the same validation split, so these numbers are slightly
optimistic; the held-out DSB test set is not part of training or tuning.

## Limitations
- Trained on few brightfield ({metrics['validation_images'].get('brightfield', 0)} validation) and H&E tissue ({metrics['validation_images'].get('tissue', 0)} validation) images: their scores are noisy.
- Very large or very small nuclei relative to the DSB scale are segmented less well: rescale first.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.export", description="Publish a model folder to the Hugging Face Hub.")
    parser.add_argument("--model", type=Path, required=True, help="the model folder to upload")
    parser.add_argument("--push-to-hub", metavar="OWNER/NAME", required=True)
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision-message", help="commit message")
    args = parser.parse_args(argv)
    from huggingface_hub.errors import HfHubHTTPError

    try:
        commit = push_to_hub(args.model, args.push_to_hub, args.private, args.revision_message)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (HfHubHTTPError, OSError) as error:
        print(f"error: upload to {args.push_to_hub} failed: {error}", file=sys.stderr)
        return 1
    print(f"pushed {args.model} to hf://{args.push_to_hub}@{commit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
