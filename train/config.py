"""All training settings in one dataclass; argparse fills it, ``train()`` reads it."""
from __future__ import annotations

import os
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .locations import SAMPLES_DATA_DIR, default_data_dir


MARKERS = ("boundary", "centre")   # --markers: what seeds each nucleus (TrainConfig.markers)


@dataclass(frozen=True)
class TrainConfig:
    data: Path = field(default_factory=default_data_dir)
    out: Path = Path("runs/default")
    # 26 epochs x 50 steps x 16 crops of 256x256 = 20,800 crops: ~47 min of fitting on 2 CPU
    # cores, within the 90-minute budget with loading, shift validation and export. 40 epochs
    # (71 min of fitting here, runs/default of 2026-11-26) scored higher overall (0.587 vs
    # 0.581) and on x2/x3 but lower on brightfield (0.276 vs 0.298, 5 images) and the stain
    # shift (0.316 vs 0.322): not a clear win on the shift validation, so 26 stays. (Those
    # set its cross-tuned export scores against shipped-settings ones, which favours the
    # latter on light images by up to 0.02; the run was not kept to rescore.)
    # 40 in mixed bfloat16 (runs/bf16e40, 2026-11-28, scored the same way as the bundled
    # model): the whole set level, light images up in most conditions but down under ihc,
    # fluorescence x3 -0.012 (experiments/bf16_e40/): 26 stays.
    epochs: int = 26
    steps_per_epoch: int = 50
    batch_size: int = 16
    crop_size: int = 256
    # Every training image is rescaled so its median nucleus is this many pixels across;
    # inference rescales user images the same way (nuclei.json scale.diameter). 20 px
    # (runs/d20, 2026-11-27), rescored the same way as the model it was compared with:
    # fluorescence higher, brightfield lower at every scale, the re-stained sets mixed
    # (experiments/diameter20/), for 1.56x the network's work: 16 stays.
    diameter: float = 16.0
    learning_rate: float = 1e-3
    # Momentum of an exponential moving average of the weights (Keras's Adam use_ema), which
    # is what gets exported; 0: the final weights themselves. Averaging the last few epochs'
    # weights is a cheap way to a flatter solution, which tends to hold better under shift.
    weight_average: float = 0.0
    # Images are drawn with probability 1 / count(kind) ** kind_balance: 0 draws by image
    # (fluorescence dominates), 1 gives each kind (fluorescence, tissue, brightfield) a third.
    # 1.0 (runs/kb1, 2026-11-27), rescored the same way as the model it was compared with:
    # no gain on the light images (16 training images drawn 1.7x as often), fluorescence
    # slightly lower: 0.7 stays (experiments/kind_balance/).
    kind_balance: float = 0.7
    # Extra BCE weight where two nuclei meet (two labels within one 5x5 window: gaps up to
    # 3 px and the 2-px rims facing them), as in the U-Net paper's weight map: the pixels that
    # keep touching nuclei apart are a sliver of each crop, and merged neighbours are a
    # held-out failure. 0: every pixel counts the same. 3, scored the same way as the model
    # it was compared with (experiments/gap_weight/): alone, fluorescence +0.004-0.011 and
    # light images level or lower; with synthetic stain (runs/synth_gap3, 2026-11-27),
    # fluorescence level and light images lower in every condition: 0 stays.
    gap_weight: float = 0.0
    # What seeds one nucleus in the watershed. "boundary": the body minus the boundary
    # probability (two outputs); "centre": a third output, each nucleus's centre map
    # (train/data.py centre_map), 1 at its centre whatever its size. Merged neighbours are the
    # commonest error where nuclei touch (15 % of tissue and 7 % of fluorescence nuclei on the
    # validation split), and cutting the body-minus-boundary markers at their necks gained
    # nothing. "centre" (runs/default of 2026-12-06, scored the same way as the bundled model):
    # every kind and condition within the run-to-run noise but tissue x3, lower (0.373 vs
    # 0.399), and as many merged tissue nuclei (experiments/centre_map/): "boundary" stays.
    markers: str = "boundary"
    # Probability that a fluorescence crop is rendered as a stained light-background image
    # (train/augment.py synthetic_stain): DSB2018 has few light-image sources, fluorescence
    # many, and the held-out set is weakest on light images. 0.25 (the bundled model,
    # 2026-11-27) against 0: every shift condition's overall score holds or rises, tissue
    # rises in all eight, the re-stained light images gain up to 0.025
    # (experiments/synthetic_stain/). 0.5, two GPU fits against two of 0.25
    # (experiments/gpu_recipes/, 2026-11-27): light images higher at x1 and x0.5 beyond the
    # run-to-run noise, fluorescence ~0.007 lower; but a CPU run of 0.5 against the bundled
    # model: tissue lower in every shift condition (x3 -0.026), brightfield +0.020 (inside
    # its noise): the gain did not hold, 0.25 stays.
    synthetic_stain: float = 0.25
    # Of those rendered crops, the share drawn as tissue (cytoplasm around each nucleus,
    # uneven nuclear stain, a haematoxylin haze: train/augment.py tissue_densities), for the
    # dense purple H&E fields the held-out set fails on. 0: plain renderings only.
    synthetic_tissue: float = 0.0
    # The arithmetic of the training steps: float32, or Keras's mixed_bfloat16 (layers compute
    # in bfloat16, weights and the sigmoid output stay float32; the exported model is float32
    # either way). On this CPU (AVX-512 BF16 / AMX) a 16x256x256 step takes 1.63 s instead of
    # 2.26 s. "auto": bfloat16 only where the CPU computes it natively (elsewhere it is
    # emulated and slower), so the same command may train in another arithmetic elsewhere.
    # The default recipe in bfloat16 (runs/bf16e26, 2026-11-28) scored lower than the bundled
    # float32 model in 23 of 28 shift-validation cells, eight beyond the run-to-run noise
    # (experiments/bf16_e40/): float32 stays.
    precision: str = "float32"
    # The model whose weights the run starts from, with its architecture and scale
    # (train/fine_tune.py): a folder, or hf://OWNER/NAME@COMMIT (pinned); None: random weights.
    fine_tune: Path | str | None = None
    seed: int = 42
    validation_fraction: float = 0.2
    base_filters: int = 16
    depth: int = 4
    panel_every: int = 4          # epochs between prediction panels
    panel_images: int = 3         # fixed validation images shown in the panels
    max_images: int | None = None  # use only the first N images (smoke tests)
    tune: bool = True             # tune post-processing thresholds on the validation split
    # Experiment: train without one whole source group (None: off; -1: the group with the
    # largest nuclei) and report the model's score on it as "holdout".
    holdout_group: int | None = None
    resume: bool = False
    # Processes making the augmented crops. One on this 2-core CPU, where the network needs
    # both cores (that one makes them in two threads beside the training step: float32
    # epochs of 145-160 s here against 170-205 s making each batch in between steps, three
    # epochs each, one run after the other, 2026-11-28); more on a machine whose
    # accelerator would otherwise wait for crops. The crops are the same either way (each
    # batch is seeded by epoch and index).
    loader_workers: int = 1

    @property
    def outputs(self) -> list[str]:
        """The network's output channels, in order (nuclei.json ``outputs``)."""
        if self.markers not in MARKERS:
            raise ValueError(f"markers must be one of {', '.join(MARKERS)}, not {self.markers!r}")
        return ["body", "boundary"] + (["centre"] if self.markers == "centre" else [])

    def to_json(self) -> dict:
        # Paths relative to the project, so a run record means the same in anyone's clone.
        return {k: (portable(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def portable(path: Path) -> str:
    from nuclei_app.config import PROJECT_DIR

    # Relative to the project whatever the working directory was (recorded_config reads it so).
    return os.path.relpath(Path(path).resolve(), PROJECT_DIR)


# Seconds long, on the bundled samples (they bring their ground truth): runs from a bare clone.
TINY_PRESET = dict(data=SAMPLES_DATA_DIR, epochs=1, steps_per_epoch=2, batch_size=2, crop_size=64, base_filters=4,
                   depth=2, panel_every=1, panel_images=1, max_images=4, tune=False)


# Nearly three times the default's crops, for about 2 h 50 min here; resumable with --resume.
LONG_PRESET = dict(epochs=72, out=Path("runs/long"))

PRESETS = {"tiny": TINY_PRESET, "long": LONG_PRESET}

# Where --fine-tune changes a default: smaller steps, so a few images adjust the base's
# weights rather than overwrite them (a tenth of a fresh run's rate, the usual choice), and
# fewer epochs (8 x 50 x 16 crops: about a third of a fresh run). Starting points, not
# settings tuned by an experiment: flags given on the command line win.
FINE_TUNE_DEFAULTS = dict(learning_rate=1e-4, epochs=8)


def with_preset(config: TrainConfig, preset: str | None) -> TrainConfig:
    if preset is None:
        return config
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return replace(config, **PRESETS[preset])


# Settings whose default is not what the code did before they existed: a run recorded before
# one of them ran as this.
BEFORE_IT_EXISTED = {"synthetic_stain": 0.0, "synthetic_tissue": 0.0, "precision": "float32"}


class NothingToResume(ValueError):
    """``--resume`` named a folder holding no run."""


class PresetMismatch(ValueError):
    """``--resume`` with a preset the run was not started with."""


def nested_runs(folder: Path, shown: int = 3) -> list[str]:
    """The run folders inside ``folder`` (a few, by name); none where it is not a folder."""
    if not folder.is_dir():
        return []
    found = sorted(child.name for child in folder.iterdir() if (child / "run.json").is_file())
    return found[:shown] + ([f"{len(found) - shown} more"] if len(found) > shown else [])


def recorded_config(folder: Path) -> TrainConfig:
    """The settings a run folder's run.json recorded (what ``--resume`` continues with): paths
    are taken relative to the project, as recorded; a setting added since is at what the code
    did then; ``out`` is the folder itself (a run folder may move)."""
    from nuclei_app.config import PROJECT_DIR

    path = Path(folder) / "run.json"
    if not Path(folder).exists():
        raise NothingToResume(f"nothing to resume in {folder}: the folder does not exist. Check --out, or leave "
                              "out --resume to start a new run.")
    runs_inside = nested_runs(Path(folder))
    if not path.is_file() and runs_inside:   # --out runs: the folder of the runs, not one of them
        raise NothingToResume(f"nothing to resume in {folder}: it holds runs ({', '.join(runs_inside)}), not one: "
                              f"give the one to resume, such as --out {Path(folder) / runs_inside[0]}.")
    if not path.is_file():
        raise NothingToResume(f"nothing to resume in {folder}: it holds no run.json (no run was started there). "
                              "Check --out, or leave out --resume to start a new run.")
    try:
        recorded = json.loads(path.read_text())["config"]
        if not isinstance(recorded, dict):
            raise TypeError(f"its config is a {type(recorded).__name__}, not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NothingToResume(f"{path} could not be read as a run record ({error}); start a new run with "
                              "another --out.") from error
    known = {f.name for f in fields(TrainConfig)}
    values = {key: value for key, value in {**BEFORE_IT_EXISTED, **recorded}.items() if key in known}
    if values.get("data") is not None:
        values["data"] = PROJECT_DIR / values["data"]   # an absolute path stays itself
    if values.get("fine_tune") and not values["fine_tune"].startswith("hf://"):
        values["fine_tune"] = PROJECT_DIR / values["fine_tune"]
    return replace(TrainConfig(**values), out=Path(folder), resume=True)
