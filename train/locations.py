"""Where the training data is found, without importing anything heavy.

In order: ``$NUCLEI_DATA``; the project's neighbour ``../shared/data/dsb2018/stage1_train``
(the development layout); the cache ``python -m train.download`` fills. When none exists
the cache path is the default, and the error for a missing folder says how to fill it.
"""
from __future__ import annotations

import os
from pathlib import Path

from nuclei_app.config import PROJECT_DIR, user_cache_dir

SIBLING_DATA_DIR = PROJECT_DIR.parent / "shared" / "data" / "dsb2018" / "stage1_train"
CACHE_DATA_DIR = user_cache_dir() / "nuclei" / "dsb2018" / "stage1_train"
# The four bundled samples with their ground truth: enough for the tiny smoke preset, so it
# runs from a bare clone.
SAMPLES_DATA_DIR = PROJECT_DIR / "assets" / "samples"


def default_data_dir() -> Path:
    if os.environ.get("NUCLEI_DATA"):
        return Path(os.environ["NUCLEI_DATA"])
    for candidate in (SIBLING_DATA_DIR, CACHE_DATA_DIR):
        if candidate.is_dir():
            return candidate
    return CACHE_DATA_DIR
