import sys
import time

import numpy as np

from nuclei_app.memory import release_free_memory, start_janitor


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        import os

        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_freed_arrays_go_back_to_the_system():
    import gc

    if not sys.platform.startswith("linux"):
        assert release_free_memory() in (True, False)
        return
    release_free_memory()
    before = rss_bytes()
    warm = np.ones(4_000_000)  # freeing it raises glibc's mmap threshold: what follows lands on the heap
    del warm
    arrays, pins = [], []
    for _ in range(300):
        arrays.append(np.ones(200_000))
        pins.append(np.ones(10))  # small live objects in between: the heap can't shrink from its top
    del arrays
    gc.collect()
    kept_by_free = rss_bytes() - before
    assert release_free_memory() is True
    kept_after_trim = rss_bytes() - before
    assert kept_by_free > 20 * 2**20 and kept_after_trim < 5 * 2**20, (kept_by_free, kept_after_trim)


def test_janitor_runs_in_the_background_until_stopped(monkeypatch):
    import threading

    import nuclei_app.memory as memory

    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1))
    stop = threading.Event()
    thread = start_janitor(every_seconds=0.01, stop=stop)
    assert thread.daemon
    deadline = time.time() + 5
    while len(calls) < 3 and time.time() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert len(calls) >= 3 and not thread.is_alive()
