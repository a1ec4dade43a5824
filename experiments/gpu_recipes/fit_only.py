"""Fits a training run and stops before evaluation and export, for the GPU machine.

The checkpoint it leaves holds the weights alone (8 MB: the optimizer state would make it
24 MB, too big to come back from that machine), and ``python -m train --resume`` with the
same flags then evaluates and exports the run on this CPU exactly like any other run.

``--init-offset K`` (first argument) starts the weights from seed + K while the split, the
crops and everything else stay those of ``--seed``: two runs that differ only in it measure
the run-to-run noise that recipe comparisons have to beat.

    PYTHONPATH=. python experiments/gpu_recipes/fit_only.py [--init-offset K] <python -m train flags>
"""
from __future__ import annotations

import json
import logging
import sys

from train import train as training
from train.__main__ import config_from_args, parse_args


def init_offset(argv: list[str]) -> tuple[int, list[str]]:
    if argv[:1] == ["--init-offset"]:
        return int(argv[1]), argv[2:]
    return 0, argv


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    offset, argv = init_offset(argv)
    config = config_from_args(parse_args(argv))
    fitted = training.fit_run(config, init_seed=config.seed + offset)
    # run_record names `python -m train`; this run was fitted by this script.
    run = fitted.run
    run["command"] = run["command"].replace("python -m train", "PYTHONPATH=. python experiments/gpu_recipes/fit_only.py", 1)
    run["experiment"] = {"init_seed": config.seed + offset}
    (fitted.folder / "run.json").write_text(json.dumps(run, indent=2))
    training.without_optimizer(fitted.model, config).save(fitted.folder / "checkpoints" / "last.keras")


if __name__ == "__main__":
    main(sys.argv[1:])
