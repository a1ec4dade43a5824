"""A scheduler's stop handled as Ctrl-C is: SIGTERM (Slurm's scancel, Kubernetes, `timeout`)
ended a run on the spot, leaving a block-wise run's scratch files in the output folder and no
word on how to go on (a user test), where Ctrl-C cleans up and says it."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt inside the block (the main thread's, where Python runs
    signal handlers); the handler before is put back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
