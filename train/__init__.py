"""Training: ``python -m train`` (fit and export), ``train.evaluate``, ``train.download``.

TensorFlow is imported here, once, with its C++ start-up banner and graph warnings silenced
(``nuclei_app.quiet``): the terminal is for the training log. ``TF_CPP_MIN_LOG_LEVEL=0``
brings them back.

Training also asks for TensorFlow's oneDNN kernels, which TensorFlow turns on by itself
only on CPUs with AVX-512 VNNI/BF16 or AMX. On an AVX2-only processor (AMD EPYC,
2026-11-28) they took a 16x256x256 training step from 7.4 s to 4.3 s, but a one-image
512x512 forward pass from 293 to 609 ms (``python -m benchmarks.cpu_kernels``): so training
asks for them, the app and the CLI leave TensorFlow's choice. ``TF_ENABLE_ONEDNN_OPTS=0``
turns them off here too.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # read once, when TensorFlow loads (below)

from nuclei_app.quiet import import_keras  # noqa: E402

import_keras()
