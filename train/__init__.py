"""Training: ``python -m train`` (fit and export), ``train.evaluate``, ``train.download``.

TensorFlow is imported here, once, with its C++ start-up banner and graph warnings silenced
(``nuclei_app.quiet``): the terminal is for the training log. ``TF_CPP_MIN_LOG_LEVEL=0``
brings them back.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from nuclei_app.quiet import import_keras  # noqa: E402

import_keras()
