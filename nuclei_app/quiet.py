"""Import TensorFlow / Keras without its C++ start-up banner on the user's terminal.

TensorFlow's native code prints log lines to file descriptor 2 before Python's logging
exists, and TF_CPP_MIN_LOG_LEVEL no longer silences all of them; the CLI's stderr is for
the user's messages, so the descriptor is pointed at /dev/null for the import only.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager


@contextmanager
def silenced_stderr_fd():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor (some test runners): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # 3: also the runtime graph warnings (E0000 ...)
    if "keras" not in sys.modules:
        with silenced_stderr_fd():
            if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
                import tensorflow  # noqa: F401  (keras' backend; imported here so it is quiet too)
            import keras  # noqa: F401
    import keras

    return keras
