"""``python -m train``: argparse -> TrainConfig -> train(). No logic here."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields, replace
from pathlib import Path

from nuclei_app.__main__ import number_argument
from nuclei_app.interrupts import exit_status, sigterm_as_interrupt
from nuclei_app.precision import PRECISIONS
from nuclei_app.wording import plural

from .config import (FINE_TUNE_DEFAULTS, MARKERS, PRESETS, NothingToResume, PresetMismatch, TrainConfig, recorded_config,
                     with_preset)
from .data import DatasetError
from .fine_tune import FineTuneError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m train", description="Train the nuclei U-Net and export a model folder.")
    parser.add_argument("--data", type=Path, help=f"dataset folder (default: {defaults.data})")
    parser.add_argument("--out", type=Path, help=f"run folder (default: {defaults.out})")
    parser.add_argument("--epochs", type=positive_int, help=f"default {defaults.epochs}")
    parser.add_argument("--steps-per-epoch", type=positive_int, help=f"default {defaults.steps_per_epoch}")
    parser.add_argument("--batch-size", type=positive_int, help=f"default {defaults.batch_size}")
    parser.add_argument("--crop-size", type=positive_int, help=f"default {defaults.crop_size}")
    parser.add_argument("--learning-rate", type=float, help=f"default {defaults.learning_rate}")
    parser.add_argument("--weight-average", type=momentum, metavar="M",
                        help="export a moving average of the weights with momentum M, e.g. 0.995 (about the "
                             f"last 200 steps); default {defaults.weight_average}: the final weights")
    parser.add_argument("--kind-balance", type=float,
                        help=f"draw images by 1/count(kind)**B: 0 by image, 1 each kind equally (default {defaults.kind_balance})")
    parser.add_argument("--gap-weight", type=non_negative,
                        help=f"extra loss weight where two nuclei meet (default {defaults.gap_weight}: none)")
    parser.add_argument("--markers", choices=MARKERS,
                        help="what seeds each nucleus: centre, a third output (each nucleus's centre map); "
                             f"boundary, the body minus boundary probability (default {defaults.markers})")
    parser.add_argument("--synthetic-stain", type=probability,
                        help="probability that a fluorescence crop is rendered as a stained light-background "
                             f"image (default {defaults.synthetic_stain}; 0: off)")
    parser.add_argument("--synthetic-tissue", type=probability,
                        help="of those, the share drawn as tissue: cytoplasm around each nucleus, uneven "
                             f"nuclear stain, a haematoxylin haze (default {defaults.synthetic_tissue})")
    # int8 is an inference arithmetic (quantized after training), not a training one.
    parser.add_argument("--precision", choices=[p for p in PRECISIONS if p != "int8"],
                        help="arithmetic of the training steps: bfloat16 is Keras's mixed_bfloat16, ~1.4x "
                             "faster on CPUs with AVX-512 BF16 or AMX; auto: bfloat16 only there; the "
                             f"exported model is float32 either way (default {defaults.precision})")
    parser.add_argument("--fine-tune", metavar="SOURCE", type=source_argument,
                        help="start from this model's weights (a model folder or hf://OWNER/NAME[@REVISION]), "
                             "e.g. assets/model, to adapt it to your own annotated images; keeps its network and "
                             "nucleus scale; defaults to "
                             + " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in FINE_TUNE_DEFAULTS.items()))
    parser.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    parser.add_argument("--base-filters", type=int, help=f"default {defaults.base_filters}")
    parser.add_argument("--depth", type=int, help=f"U-Net levels: down-sampling steps before the bottleneck (default {defaults.depth})")
    parser.add_argument("--diameter", type=float, help=f"canonical nucleus diameter in px (default {defaults.diameter})")
    parser.add_argument("--holdout-group", type=int, metavar="N",
                        help="experiment: leave source group N out of training and score it (-1: the group "
                             "with the largest nuclei)")
    parser.add_argument("--loader-workers", type=int, metavar="N",
                        help="processes making augmented crops (default 1: two threads of this process, as the "
                             "network needs both CPU cores here; more where a GPU waits for crops)")
    parser.add_argument("--max-images", type=int, help="use only the first N images (smoke tests)")
    parser.add_argument("--preset", choices=["tiny", "long"],
                        help="tiny: a seconds-long smoke run on 4 images; long: 72 epochs into runs/long (~2 h 50 min on the "
                             "faster 2-core processors, 3.5-4 h on an Ice Lake Xeon)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint, with the settings its run.json "
                             "records (flags given must agree with them, except --epochs to train longer)")
    parser.add_argument("--push-to-hub", metavar="OWNER/NAME", help="upload the exported model folder to the Hugging Face Hub")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--revision-message", help="commit message for the Hub upload")
    args = parser.parse_args(argv)
    if args.fine_tune is not None and args.holdout_group is not None:
        # The base trained on every source: the held-out group's score would not be "never trained on".
        parser.error("--holdout-group measures a source the model never saw, but a fine-tuned model starts from "
                     "weights that may have: run it without --fine-tune")
    if (args.private or args.revision_message) and not args.push_to_hub:
        parser.error("--private and --revision-message only apply to an upload: add --push-to-hub OWNER/NAME")
    if args.push_to_hub and args.preset == "tiny":
        parser.error("--preset tiny trains a smoke-test model, not one to publish: leave out --push-to-hub")
    if args.push_to_hub:
        repo_problem = hub_repo_problem(args.push_to_hub)
        if repo_problem:   # told now, not after the run
            parser.error(repo_problem)
    return args


def hub_repo_problem(repo_id: str) -> str | None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if repo_id.count("/") != 1:
        return f"--push-to-hub {repo_id}: give the repository as OWNER/NAME"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        return f"--push-to-hub {repo_id}: not a Hub repository name ({str(error).splitlines()[0]})"
    return None


def source_argument(text: str):
    from .fine_tune import model_source

    try:
        return model_source(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def momentum(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a momentum in [0, 1)")
    return value


# --epochs 0 or --batch-size 0 reached Keras and ended in its traceback (a user test).
positive_int = number_argument(int, lambda v: v >= 1, "must be 1 or more")


def non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:  # also NaN
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset's settings (or, with --resume, the run's own, from its run.json), with the
    flags given on top: a resume only names what it changes (more --epochs)."""
    config = with_preset(TrainConfig(), args.preset)
    # "is", not "in (None, False)": 0 == False, and --holdout-group 0 or --kind-balance 0 are meant.
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None and getattr(args, f.name) is not False}
    if args.resume:  # the preset only says where the run is (runs/long); its settings are recorded
        config = recorded_config(given.get("out", config.out))
        check_preset_of(config, args.preset, given)
    elif "fine_tune" in given:   # the base's network and scale, read before TensorFlow starts
        from .fine_tune import find_base, with_base

        config = with_base(config, find_base(given.pop("fine_tune")), given, PRESETS.get(args.preset))
    return replace(config, **given)


def check_preset_of(run: TrainConfig, preset: str | None, given: dict) -> None:
    """A preset named with --resume must be the run's own: a trial's --resume --preset long on a
    7-epoch run trained nothing and said nothing (the preset only locates the run). Its data
    folder is not compared (a tiny run may use other images), nor epochs the run has gone past."""
    from .fine_tune import ARCHITECTURE

    settings = PRESETS.get(preset, {})
    # A fine-tuning run's network is its base's, whatever the preset's (--preset tiny's 4 filters).
    own = ARCHITECTURE if run.fine_tune else ()
    differences = [f"{key}: {getattr(run, key)!r} in the run, {value!r} in the preset"
                   for key, value in settings.items()
                   if key not in ("out", "data", *own, *given) and getattr(run, key) != value
                   and not (key == "epochs" and getattr(run, key) >= value)]
    if differences:
        longer = (f" (or --epochs {settings['epochs']} to train it longer)"
                  if settings.get("epochs", 0) > run.epochs and "epochs" not in given else "")
        raise PresetMismatch(f"the run in {run.out} differs from --preset {preset} ({'; '.join(differences)}): leave "
                             f"out --preset to resume it as it was{longer}.")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except (NothingToResume, PresetMismatch, FineTuneError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if config.crop_size % 2 ** config.depth:   # the U-Net halves it depth times (a Keras error otherwise)
        print(f"error: --crop-size {config.crop_size} must be a multiple of {2 ** config.depth} "
              f"(2 to the U-Net's depth, {config.depth}).", file=sys.stderr)
        return 2
    if args.push_to_hub:
        from .export import hub_token_problem

        problem = hub_token_problem()
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    from .data_record import DataChanged
    from .train import ConfigMismatch, RunInTheWay, train  # TensorFlow loads only once the arguments are valid

    try:
        with sigterm_as_interrupt():
            model_folder = train(config)
    except (DatasetError, ConfigMismatch, DataChanged, RunInTheWay, FineTuneError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        from .callbacks import epochs_done

        if not (Path(config.out) / "run.json").exists():   # stopped while reading the data
            print("\ninterrupted before the run started: nothing was written; run the same command again.",
                  file=sys.stderr)
            return exit_status(interrupt)
        done = epochs_done(Path(config.out) / "checkpoints")
        kept = f"keeps its {plural(done, 'finished epoch', 'finished epochs')}" if done else "had finished no epoch yet"
        print(f"\ninterrupted: the run {kept}; continue it with python -m train --resume --out {config.out}",
              file=sys.stderr)
        return exit_status(interrupt)
    print(f"model folder: {model_folder}")
    if args.push_to_hub:
        from .export import publish

        return publish(model_folder, args.push_to_hub, args.private, args.revision_message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
