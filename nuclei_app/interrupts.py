"""A scheduler's stop handled as Ctrl-C is: SIGTERM (Slurm's scancel, Kubernetes, `timeout`)
ended a run on the spot, leaving a block-wise run's scratch files in the output folder and no
word on how to go on (a user test), where Ctrl-C cleans up and says it."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt (``Terminated``) inside the block (the main thread's, where Python runs
    signal handlers); the handler before is put back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C but told apart in the exit status."""


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """The shell's convention, 128 + the signal: 130 for Ctrl-C (SIGINT), 143 for SIGTERM, so a
    scheduler's log tells a stop it sent from a user's Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def _interrupt(signum, frame):
    raise Terminated
